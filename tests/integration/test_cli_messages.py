"""Messages and help a user reads (issue #12 item 11): no stray punctuation, no reStructuredText
markup, defaults shown, a quiet `fermion serve`, a `sim status` that does not show an old error
beside a connected device, and `sim create -n N` that prints a summary, not N lines."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from fermion.cli import main as cli_main
from harness import free_port

from .clirun import FERMION, error_line, run, run_json

pytestmark = pytest.mark.integration


def _commands(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
    yield " ".join(path), command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, [*path, name])


def test_help_texts_have_no_rst_markup_nor_the_seed() -> None:
    cli_main._mount()
    root = typer.main.get_command(cli_main.app)
    found = []
    commands = list(_commands(root, ["fermion"]))
    assert len(commands) > 40  # the walk sees every sub-command, not the root alone
    for path, command in commands:
        texts = [command.help or "", command.short_help or ""]
        texts += [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            if "``" in text or "seed's" in text:
                found.append(f"{path}: {text}")
    assert not found, "\n".join(found)


def test_serve_help_shows_the_device_port_default(tmp_path: Path) -> None:
    shown = run("serve", "--help", cwd=tmp_path).stdout
    assert "default 5683" in " ".join(shown.split()), shown
    assert "--access-log" in shown


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`fermion serve` as a user starts it (no --access-log), its output kept in a file."""
    home = tmp_path_factory.mktemp("quiet-serve")
    port = free_port()
    log = home / "out.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(FERMION), "serve", "--port", str(port), "--device-port", "0"],
            env={**env, "FERMION_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/v1/server-keys", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_writes_no_access_lines_by_default(quiet_server: tuple[str, Path]) -> None:
    url, log = quiet_server
    for _ in range(3):
        httpx.get(f"{url}/v1/server-keys")
    time.sleep(0.5)
    text = log.read_text()
    assert "Fermion cloud on" in text  # the start-up lines are still printed
    assert "GET /v1/server-keys" not in text, text


def test_an_invalid_token_reads_as_one_sentence(
    quiet_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = quiet_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    done = subprocess.run(
        [str(FERMION), "whoami"],
        env={**env, "FERMION_HOME": str(tmp_path), "FERMION_API_URL": url, "FERMION_TOKEN": "x"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    line = error_line(done)
    assert ".;" not in line, line
    assert "The access token provided is invalid; run `fermion login`" in line, line


def test_sim_status_shows_no_old_error_beside_a_connected_device(
    tmp_path: Path, fermion_home: Path
) -> None:
    from fermion.device.store import SimDevice

    device_id = run("sim", "create", "-p", "photon", "-q", cwd=tmp_path).stdout.strip()
    device = SimDevice.open(device_id)
    status = device.load_status()
    # What `sim run` leaves after a refused handshake followed by a good one.
    status.last_protocol_error = {"code": 26, "name": "INVALID_KEY", "message": "", "at": "x"}
    status.online = True
    status.extra["cloud"] = {"state": "connected", "address": "127.0.0.1:5683"}
    device.save_status(status)
    row = run_json("sim", "status", cwd=tmp_path)[0]
    assert row["error"] is None
    assert row["last_protocol_error"]["code"] == 26  # the history is still there for scripts
    table = run("sim", "status", cwd=tmp_path).stdout
    assert "INVALID_KEY" not in table, table

    status.online = False
    device.save_status(status)
    assert "INVALID_KEY" in run("sim", "status", cwd=tmp_path).stdout


def test_sim_create_many_prints_a_summary_not_a_line_each(
    tmp_path: Path, fermion_home: Path
) -> None:
    out = run("sim", "create", "-p", "photon", "-n", "12", cwd=tmp_path).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "created 12 photon devices" in lines[0], out
    ids = run("sim", "create", "-p", "photon", "-n", "3", "-q", cwd=tmp_path).stdout.split()
    assert len(ids) == 3 and all(len(i) == 24 for i in ids)
    assert len(run_json("sim", "list", cwd=tmp_path)) == 15


def test_a_missing_key_file_is_named_without_a_made_up_alternative(tmp_path: Path) -> None:
    device = "1d0034000fffffffffff4017"
    named = error_line(run("keys", "send", device, "nonexistent.pem", cwd=tmp_path, expect=1))
    assert "nonexistent.pem: no such key file" in named and ".pem.pub.pem" not in named
    bare = error_line(run("keys", "send", device, "mykey", cwd=tmp_path, expect=1))
    assert "mykey: no such key file (nor mykey.pub.pem)" in bare
