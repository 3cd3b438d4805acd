"""repair_cmd.register adds the cloud-facing `keys` commands through Typer's public API."""

from __future__ import annotations

import re
import subprocess
import sys

CLI = [sys.executable, "-m", "fermion.cli.main"]


def _run(*args: str) -> str:
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, check=True, env={"COLUMNS": "200"}
    )
    return done.stdout


def test_keys_lists_each_command_once_and_server_is_the_cloud_aware_one() -> None:
    listing = _run("keys", "--help")
    names = re.findall(r"^│ (\w+) ", listing, re.M)
    for name in ("server", "send", "approve", "reject", "repair", "doctor"):
        assert names.count(name) == 1, (name, names)
    # The wrapped `keys server`: without FILE it asks the cloud the CLI is logged in to.
    assert "Without FILE" in _run("keys", "server", "--help")


def test_register_twice_in_one_process_adds_nothing() -> None:
    import typer

    from fermion.cli import keys_cmd, repair_cmd

    app = typer.Typer()
    repair_cmd.register(app)
    before = len(keys_cmd.app.registered_commands)
    repair_cmd.register(app)
    assert len(keys_cmd.app.registered_commands) == before
