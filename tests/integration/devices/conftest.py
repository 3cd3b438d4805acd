"""Fixtures for the device server's integration tests (see ``devices_harness``).

The device server writes presence, outcomes, candidates and proofs to the store, so every test
that uses ``cloud`` (or ``database_url``) runs once on SQLite and once on PostgreSQL, each time
on an empty database of its own (``harness.fresh_database``, as every suite).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from devices_harness import Cloud, describe, logged_failures, start_cloud, stop_cloud

from harness import BACKENDS, fresh_database

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, fermion_home: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    url, drop = fresh_database(request.param, fermion_home)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
async def cloud(fermion_home: Path, database_url: str) -> AsyncIterator[Cloud]:
    with logged_failures() as failures:
        c = await start_cloud(fermion_home, database_url=database_url)
        try:
            yield c
        finally:
            await stop_cloud(c)
    assert not failures, f"the device server logged failures:\n{describe(failures)}"


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """uvloop when installed, as ``fermion serve`` runs (its transports differ from asyncio's)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.DefaultEventLoopPolicy()
    return uvloop.EventLoopPolicy()
