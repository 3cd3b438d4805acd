"""Shared fixtures: every test gets its own Fermion data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI must not fail on an example nobody has seen before, so there (`HYPOTHESIS_PROFILE=ci`, set
# by .ci/run) the examples are the same at every run; elsewhere each run explores new ones, and
# `HYPOTHESIS_PROFILE=hunt` explores twenty times as many.
settings.register_profile("ci", derandomize=True)
settings.register_profile("hunt", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def fermion_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FERMION_HOME at a fresh folder so no test touches the user's home."""
    home = tmp_path_factory.mktemp("fermion-home")
    monkeypatch.setenv("FERMION_HOME", str(home))
    return home
