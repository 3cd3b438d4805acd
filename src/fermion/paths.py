"""Where Fermion keeps its data: one rule for the cloud, the simulator and the CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``FERMION_HOME`` when set (tests always set it), else the platform's user data folder."""
    env = os.environ if environ is None else environ
    home = env.get("FERMION_HOME")
    return Path(home).expanduser() if home else Path(platformdirs.user_data_dir("fermion"))
