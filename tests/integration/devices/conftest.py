"""Fixtures for the device server's integration tests (see ``devices_harness``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from devices_harness import Cloud, start_cloud, stop_cloud

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
async def cloud(fermion_home: Path) -> AsyncIterator[Cloud]:
    c = await start_cloud(fermion_home)
    try:
        yield c
    finally:
        await stop_cloud(c)


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """uvloop when installed, as ``fermion serve`` runs (its transports differ from asyncio's)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.DefaultEventLoopPolicy()
    return uvloop.EventLoopPolicy()
