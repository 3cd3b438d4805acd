"""The --dfu link against a stand-in dfu-util on PATH that records its arguments and reads and
writes a DCT image file: the invocations must be particle-cli's (alt 1, reference §3.1)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.repair_harness import Cloud

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "fermion.cli.main"]
FAKE = Path(__file__).resolve().parents[2] / "unit" / "repair" / "fake_dfu_util.py"


class Dfu:
    def __init__(self, tmp: Path, home: Path) -> None:
        self.home = home
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        script = bin_dir / "dfu-util"
        script.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        self.log = tmp / "dfu.log"
        self.image = tmp / "device.dct"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FERMION_")},
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FERMION_HOME": str(home),
            "FAKE_DFU_LOG": str(self.log),
            "FAKE_DFU_IMAGE": str(self.image),
        }
        self.cwd = tmp

    def run(self, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CLI, *args],
            env={**self.env, **env},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def dfu(tmp_path: Path, fermion_home: Path) -> Dfu:
    d = Dfu(tmp_path, fermion_home)
    made = d.run("sim", "create", "-p", "photon", "--json")
    device = json.loads(made.stdout)[0]["id"]
    shutil.copy(fermion_home / "devices" / device / "dct.bin", d.image)
    d.env["FAKE_DFU_SERIAL"] = device
    d.device = device  # type: ignore[attr-defined]
    return d


def _rw(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if c != ["-l"]]


def test_keys_save_reads_the_private_key_segment(dfu: Dfu) -> None:
    dfu.run("keys", "save", "k", "--dfu")
    calls = _rw(dfu.calls())
    assert all(c[:6] == ["-d", "2b04:d006", "-a", "1", "-i", "0"] for c in calls)
    assert ["-s", "34:612", "-U"] in [c[6:9] for c in calls]
    assert not any("-D" in c for c in calls)  # saving never writes
    assert ["-l"] in dfu.calls()  # the device was found with dfu-util -l
    assert (dfu.cwd / "k.pub.pem").exists()


def test_keys_load_writes_at_34_and_leaves_dfu(dfu: Dfu) -> None:
    dfu.run("keys", "new", "fresh", "-a", "rsa")
    dfu.run("keys", "load", "fresh", "--dfu")
    writes = [c for c in _rw(dfu.calls()) if "-D" in c]
    assert [c[7] for c in writes] == ["34", "34:leave"]  # the last write resets the device
    dfu.run("keys", "save", "after", "--dfu", "--force")
    assert (dfu.cwd / "after.pub.pem").read_text() == (dfu.cwd / "fresh.pub.pem").read_text()


def test_keys_server_writes_512_bytes_at_2082(dfu: Dfu, tmp_path: Path) -> None:
    from fermion.keys import Algorithm, generate_server_key, public_key_pem

    key = tmp_path / "server.pub.pem"
    key.write_bytes(public_key_pem(generate_server_key(Algorithm.RSA).public_key()))
    dfu.run("keys", "server", str(key), "--host", "127.0.0.1", "--port", "5683", "--dfu")
    writes = [c for c in _rw(dfu.calls()) if "-D" in c]
    assert writes[0][6:8] == ["-s", "2082"]
    address = dfu.run("keys", "address", "--dfu", "--json")
    assert json.loads(address.stdout)["host"] == "127.0.0.1"
    reads = [c for c in _rw(dfu.calls()) if "-U" in c]
    # The address block sits at 2082 + 384 (reference §3.1).
    assert any(2082 <= int(c[7].split(":")[0]) < 2082 + 512 for c in reads)


def test_offline_keys_commands_take_dfu_themselves(
    dfu: Dfu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bare ``keys`` app (no cloud commands registered on it) reaches the device over DFU:
    ``keys new`` names the files after the device id it reads, ``protocol`` knows the platform."""
    from typer.testing import CliRunner

    from fermion.cli import keys_cmd

    for name, value in dfu.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(dfu.cwd)
    made = CliRunner().invoke(keys_cmd.app, ["new", "--dfu", "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["files"]["pem"].endswith(f"{dfu.device}.pem")  # type: ignore[attr-defined]
    proto = CliRunner().invoke(keys_cmd.app, ["protocol", "--dfu"])
    assert proto.exit_code == 1
    assert "applies to the Electron only; a photon always uses TCP" in str(proto.exception)
    both = dfu.run("keys", "save", "x", "--dfu", "--dct", str(dfu.image), ok=False)
    assert both.stderr.strip() == "error: give one of --device, --dct or --dfu"


def test_a_failing_dfu_util_is_one_line(dfu: Dfu) -> None:
    dfu.run("keys", "new", "fresh2", "-a", "rsa")
    done = dfu.run("keys", "load", "fresh2", "--dfu", ok=False, FAKE_DFU_FAIL="write")
    assert done.returncode == 1
    assert done.stderr.startswith("error: dfu-util: writing")
    assert done.stderr.strip().count("\n") == 0


def test_no_device_in_dfu_mode(dfu: Dfu) -> None:
    done = dfu.run("keys", "save", "x", "--dfu", ok=False, FAKE_DFU_PID="c006")
    assert done.returncode == 1 and "no Particle device" in done.stderr


def test_missing_dfu_util(dfu: Dfu) -> None:
    done = dfu.run("keys", "save", "x", "--dfu", ok=False, PATH="/nonexistent")
    assert done.returncode == 1 and "dfu-util is not installed" in done.stderr


def test_keys_doctor_over_dfu(dfu: Dfu, cloud: Cloud) -> None:
    """The doctor on real hardware: upload first, then write through dfu-util, then leave DFU."""
    device = dfu.device  # type: ignore[attr-defined]
    cloud.cli("admin", "create-user", "hw@example.com", "--password", "correct horse battery")
    env = {
        **cloud.env("hw"),
        "PATH": dfu.env["PATH"],
        **{k: v for k, v in dfu.env.items() if k.startswith("FAKE_DFU")},
    }
    dfu.env.update(env)
    dfu.run("login", "-u", "hw@example.com", "-p", "correct horse battery")
    dfu.run("keys", "save", "before", "--dfu")
    dfu.run("keys", "send", device, "before.pub.pem")
    # The fake dfu-util is no device that connects: without waiting, the doctor puts the keys
    # right and exits 3 saying what is left to do (issue #12 item 3), never "done".
    done = dfu.run("keys", "doctor", device, "--dfu", "--no-wait", "--json", ok=False)
    assert done.returncode == 3 and "left to do" in done.stderr, done.stderr
    out = json.loads(done.stdout)
    assert out["online"] is False and out["left_to_do"]
    dfu.run("keys", "save", "after", "--dfu")
    from fermion.keys import load_key_file

    assert load_key_file(dfu.cwd / "after.pub.pem").fingerprint.sha256 == out["fingerprint"]
    writes = [c for c in _rw(dfu.calls()) if "-D" in c]
    assert writes[-1][7].endswith(":leave")  # the device left DFU mode to boot the new key
    assert ["34"] in [[w[7]] for w in writes]
