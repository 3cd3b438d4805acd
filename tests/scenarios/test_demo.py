"""`fermion up --demo`: wait for the banner, run every repair command it printed, and see every
repairable device hold a key the cloud holds (and online, once devices can connect)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from repair_harness import CLI, has_command

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


def _without_venv(path: str) -> str:
    """PATH as a second shell has it: without the virtual environment the tests run in."""
    venv_bin = str(Path(sys.executable).parent)
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and p != venv_bin)


def test_up_demo_banner_commands_repair_every_device(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    env["COLUMNS"] = "200"
    proc = subprocess.Popen(
        [*CLI, "up", "--demo", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        text = _read_banner(proc)
        exports = re.search(r"^\s*(export FERMION_HOME=.*)$", text, re.M)
        assert exports, text
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

        # Exactly as printed, in a shell that has not activated the virtual environment: the
        # banner's export line must put `fermion` on PATH itself.
        shell_env = {**env, "PATH": _without_venv(env["PATH"])}
        who = subprocess.run(
            ["bash", "-c", f"{exports.group(1)}; fermion whoami --json"],
            env=shell_env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert who.returncode == 0, who.stderr  # a bare command acts as the default profile
        assert json.loads(who.stdout)["username"].startswith("developer"), who.stdout
        # A device this cloud cannot serve (UDP without DTLS) cannot come back here: its repair
        # puts the keys right and exits 3 saying what is left to do, never "done" (#12 item 3).
        unservable = {d["id"] for d in broken if (d["note"] or "").startswith("this cloud has no")}
        for command in commands:
            done = subprocess.run(
                ["bash", "-c", f"{exports.group(1)}; {command}"],
                env=shell_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
            )
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
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            assert proc.returncode == 0  # Ctrl-C is a clean stop
