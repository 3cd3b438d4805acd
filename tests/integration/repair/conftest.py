"""Integration fixtures shared with the scenarios (the harness lives in tests/scenarios)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scenarios"))

from repair_harness import Cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    # One cloud per module: starting processes is what these tests spend their time on, and
    # every test uses its own people and devices.
    c = Cloud(tmp_path_factory.mktemp("fermion")).start()
    try:
        yield c
    finally:
        c.stop()
