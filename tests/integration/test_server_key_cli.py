"""``fermion server-key rotate`` and ``retire`` as a user runs them, on a data directory's store."""

from __future__ import annotations

from pathlib import Path

import pytest

from .clirun import error_line, run, run_json

pytestmark = pytest.mark.integration


def test_rotate_then_retire_names_the_keys_they_leave(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    first = run_json("server-key", "show", *data, cwd=tmp_path)
    assert [k["state"] for k in first] == ["current"]

    rotated = run_json("server-key", "rotate", *data, cwd=tmp_path)
    assert rotated["state"] == "current"
    assert rotated["fingerprint"] != first[0]["fingerprint"]
    assert list(rotated) == ["id", "algorithm", "state", "fingerprint", "short", "created_at"]

    said = run("server-key", "rotate", *data, cwd=tmp_path).stdout
    newest = run_json("server-key", "show", *data, cwd=tmp_path)
    current = next(k for k in newest if k["state"] == "current")
    assert said.startswith(f"new current server key {current['fingerprint']};"), said
    assert "'fermion server-key retire'" in said

    # Retire ends the rotation: the key it names is the one that was current before.
    said = run("server-key", "retire", *data, cwd=tmp_path).stdout
    assert said.strip() == f"retired server key {rotated['fingerprint']}"

    nothing = run("server-key", "retire", "--json", *data, cwd=tmp_path, expect=1)
    assert "nothing to retire" in error_line(nothing)
