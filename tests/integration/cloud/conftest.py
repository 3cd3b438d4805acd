"""Fixtures: a real ``fermion serve`` per test module and backend (see ``cloud_harness``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_harness import BACKENDS, Cloud, Server, running_server

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(backend, tmp_path_factory, "cloud") as srv:
        yield srv


@pytest.fixture(scope="module")
def cloud(server: Server) -> Cloud:
    return Cloud(server)
