"""Run the installed ``fermion`` entry point as a user would (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FERMION = Path(sys.executable).parent / "fermion"


def run(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [str(FERMION), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == expect, (args, result.stdout, result.stderr)
    if expect:
        assert "Traceback" not in result.stderr, result.stderr
    return result


def run_json(*args: str, cwd: Path) -> Any:
    return json.loads(run(*args, "--json", cwd=cwd).stdout)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line error a failed command printed."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
