"""Shared fixtures: every test gets its own Fermion data directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def fermion_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FERMION_HOME at a fresh folder so no test touches the user's home."""
    home = tmp_path_factory.mktemp("fermion-home")
    monkeypatch.setenv("FERMION_HOME", str(home))
    return home
