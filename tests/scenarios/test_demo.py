"""`fermion up --demo`: wait for the banner, run every repair command it printed, and see every
repairable device hold a key the cloud holds (and online, once devices can connect)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from scenarios.repair_harness import CLI, has_command

pytestmark = pytest.mark.integration


def _read_banner(proc: subprocess.Popen[str], timeout: float = 600) -> str:
    # A thread reads the pipe: select() on a buffered text pipe misses lines already buffered.
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("fermion up exited early:\n" + "".join(seen))
        seen.append(line)
        if line.startswith("Ctrl-C stops everything"):
            return "".join(seen)
    raise AssertionError("no banner:\n" + "".join(seen))


def _fresh_shell(line: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``line`` in a shell as a second terminal has it: an empty environment (no venv on PATH,
    no FERMION_* variable), only what the banner's export line itself sets."""
    return subprocess.run(
        ["env", "-i", "bash", "-c", line],
        env={},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def _start_demo(data: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    env["COLUMNS"] = "200"
    return subprocess.Popen(
        [*CLI, "up", "--demo", "--data-dir", str(data), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _stop_demo(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0  # Ctrl-C is a clean stop


def _export_line(banner: str) -> str:
    found = re.search(r"^\s*(export FERMION_HOME=.*)$", banner, re.M)
    assert found, banner
    return found.group(1)


def test_up_demo_banner_commands_repair_every_device(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    proc = _start_demo(data)
    try:
        text = _read_banner(proc)
        exports = _export_line(text)
        commands = [m.strip() for m in re.findall(r"^\s*repair: (.*)$", text, re.M)]
        state = json.loads((data / "demo.json").read_text())
        broken = [d for d in state["devices"] if d["fault"]]
        assert len(state["devices"]) >= 12
        assert {d["fault"] for d in broken} >= {
            "brownout",
            "server-key",
            "fs-reformat",
            "bootloader",
            "key-regenerated",
        }
        assert len(commands) == len([d for d in broken if d["repair"]])
        assert "firmware fault" in text  # the dead bootloader is not offered a key command

        # Exactly as printed, in a fresh shell (`env -i`): the banner's export line must put
        # `fermion` on PATH itself and point it at the demo.
        who = _fresh_shell(f"{exports}; fermion whoami --json")
        assert who.returncode == 0, who.stderr  # a bare command acts as the default profile
        assert json.loads(who.stdout)["username"].startswith("developer"), who.stdout
        # A device this cloud cannot serve (UDP without DTLS) cannot come back here: its repair
        # puts the keys right and exits 3 saying what is left to do, never "done" (#12 item 3).
        unservable = {d["id"] for d in broken if (d["note"] or "").startswith("this cloud has no")}
        for command in commands:
            done = _fresh_shell(f"{exports}; {command}", cwd=tmp_path)
            if any(device_id in command for device_id in unservable):
                assert done.returncode == 3, (command, done.stderr)
                assert "left to do" in done.stderr, (command, done.stderr)
            else:
                assert done.returncode == 0, (command, done.stderr)
        # No private key lands where the commands ran: they stay in the data directory.
        assert not [p.name for p in tmp_path.iterdir() if p.suffix in (".pem", ".der")]

        # Every repaired device now holds a key the cloud holds (read as the product owner or
        # the maker, whoever can see it).
        profiles = data / "profiles"
        tokens = [
            json.loads((profiles / f"{p}.config.json").read_text())["access_token"]
            for p in ("owner", "maker")
        ]
        for dev in broken:
            if not dev["repair"] or dev["fault"] == "server-key":
                continue
            inspect = subprocess.run(
                [*CLI, "sim", "inspect", dev["id"], "--json"],
                env={**env, "FERMION_HOME": str(data)},
                capture_output=True,
                text=True,
                check=True,
            )
            on_device = json.loads(inspect.stdout)["device_key"]["fingerprint"]["sha256"]
            seen = []
            for token in tokens:
                r = httpx.get(
                    f"{state['api_url']}/v1/devices/{dev['id']}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                if r.status_code == 200:
                    seen.append(r.json()["key_fingerprint"])
            assert on_device in seen, (dev["label"], on_device, seen)
        if not has_command("sim", "run") or not state["device_address"]:
            pytest.xfail(
                "devserver: `fermion sim run` has not landed, so 'every repairable device "
                "online' cannot be observed (keys verified on both sides instead)"
            )
        # Every repaired device the cloud can serve comes online (UDP devices need an EC
        # server key and DTLS, which this cloud does not have yet: the banner says so).
        deadline = time.monotonic() + 120
        waiting = {
            d["id"]: d["label"]
            for d in broken
            if d["repair"] and not (d["note"] or "").startswith("this cloud has no")
        }
        while waiting and time.monotonic() < deadline:
            for device_id in list(waiting):
                for token in tokens:
                    r = httpx.get(
                        f"{state['api_url']}/v1/devices/{device_id}",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    if r.status_code == 200 and r.json()["online"]:
                        waiting.pop(device_id, None)
                        break
            time.sleep(1)
        assert not waiting, f"not online: {waiting}"
    finally:
        _stop_demo(proc)


def _one_run(data: Path, *extra: str) -> tuple[str, dict[str, Any]]:
    """Start the demo, read its banner and state, stop it; (banner, state)."""
    proc = _start_demo(data, *extra)
    try:
        text = _read_banner(proc)
        state = json.loads((data / "demo.json").read_text())
    finally:
        _stop_demo(proc)
    return text, state


def _secret(banner: str) -> str:
    found = re.search(r"two-legged client (\S+) \(secret (\S+)\)", banner)
    assert found, banner
    return found.group(2)


def test_up_demo_is_kept_between_runs_unless_fresh(tmp_path: Path) -> None:
    """A second `make up` runs the same demo (same ports, ids, secret, logins); --fresh seeds a
    new one."""
    data = tmp_path / "demo"
    first_banner, first = _one_run(data)
    assert "seeded now and kept" in first_banner
    assert stat.S_IMODE((data / "demo.json").stat().st_mode) == 0o600

    second_banner, second = _one_run(data)
    assert "kept from the last run" in second_banner
    for key in ("api_url", "device_address", "product_id", "client"):
        assert second[key] == first[key], key
    assert [d["id"] for d in second["devices"]] == [d["id"] for d in first["devices"]]
    assert _secret(second_banner) == _secret(first_banner) == first["client"][1]
    assert _export_line(second_banner) == _export_line(first_banner)

    # The kept logins still work, from a fresh shell, exactly as the banner says.
    proc = _start_demo(data)
    try:
        who = _fresh_shell(f"{_export_line(_read_banner(proc))}; fermion whoami --json")
        assert who.returncode == 0, who.stderr
        assert json.loads(who.stdout)["username"].startswith("developer")
    finally:
        _stop_demo(proc)

    fresh_banner, fresh = _one_run(data, "--fresh")
    assert "seeded now" in fresh_banner
    assert not {d["id"] for d in fresh["devices"]} & {d["id"] for d in first["devices"]}
    assert _secret(fresh_banner) != _secret(first_banner)
