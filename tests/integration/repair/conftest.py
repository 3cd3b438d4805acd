"""Integration fixtures shared with the scenarios (the harness lives in tests/scenarios)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scenarios.repair_harness import Cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    # One cloud per module: starting processes is what these tests spend their time on, and
    # every test uses its own people and devices.
    c = Cloud(tmp_path_factory.mktemp("fermion")).start()
    try:
        yield c
    finally:
        c.stop()
