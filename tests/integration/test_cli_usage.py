"""Usage errors: what a user who mistypes a command sees. A message naming the mistake and how
to get help, exit code 2 (click's convention for usage errors), never a Python traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .clirun import run


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "Usage"),
        (("nosuch",), "No such command 'nosuch'"),
        (("keys", "--bogus"), "No such option: --bogus"),
        (("keys", "send"), "Missing argument 'DEVICE'"),
        (("sim", "create", "--platform"), "requires an argument"),
    ],
)
def test_usage_error_names_the_mistake_without_a_traceback(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    result = run(*args, cwd=tmp_path, expect=2)
    shown = result.stdout + result.stderr
    assert says in shown, shown


def test_help_still_exits_zero(tmp_path: Path) -> None:
    result = run("keys", "--help", cwd=tmp_path)
    assert "doctor" in result.stdout
