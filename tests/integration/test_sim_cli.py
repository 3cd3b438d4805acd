"""``fermion sim``: create, list, inspect, fault and boot through the real entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from fermion.keys import Algorithm, generate_server_key, public_key_der, public_key_pem

from .clirun import error_line, run, run_json

pytestmark = pytest.mark.integration


def test_create_list_inspect(tmp_path: Path, fermion_home: Path) -> None:
    photon = run_json("sim", "create", "--platform", "photon", cwd=tmp_path)
    assert len(photon) == 1
    argons = run_json("sim", "create", "--platform", "argon", "--count", "2", cwd=tmp_path)
    assert len(argons) == 2
    info = photon[0]
    assert len(info["id"]) == 24
    assert info["platform_id"] == 6 and info["transport"] == "tcp"
    assert info["device_key"]["algorithm"] == "rsa"
    assert info["device_key"]["fingerprint"]["sha256"].startswith("SHA256:")
    assert info["key_errors"] == {
        "mask": 5,
        "names": ["PUBLIC_SERVER_KEY_BLANK", "SERVER_ADDRESS_BLANK"],
    }
    assert info["server_key"]["is_backup_cloud"] is True
    assert info["server_address"]["effective"] == {
        "host": "device.spark.io",
        "port": 5683,
        "default_port": True,
    }
    assert {a["transport"] for a in argons} == {"udp"}
    assert {a["device_key"]["algorithm"] for a in argons} == {"ec"}

    listed = run_json("sim", "list", cwd=tmp_path)
    assert sorted(d["id"] for d in listed) == sorted(d["id"] for d in photon + argons)
    table = run("sim", "list", cwd=tmp_path).stdout
    assert info["id"] in table

    text = run("sim", "inspect", info["id"], cwd=tmp_path).stdout
    assert info["device_key"]["fingerprint"]["sha256"] in text
    assert info["device_key"]["fingerprint"]["short"] in text
    assert "PUBLIC_SERVER_KEY_BLANK" in text and "tcp" in text
    assert (fermion_home / "devices" / info["id"] / "dct.bin").stat().st_size == 16384


def test_create_with_a_server_key(tmp_path: Path) -> None:
    server = generate_server_key(Algorithm.EC)
    keyfile = tmp_path / "cloud.pub.der"
    keyfile.write_bytes(public_key_der(server.public_key()))
    [info] = run_json(
        "sim",
        "create",
        "-p",
        "boron",
        "--server-key",
        str(keyfile),
        "--host",
        "127.0.0.1",
        "--port",
        "5684",
        cwd=tmp_path,
    )
    assert info["key_errors"]["mask"] == 0
    assert info["server_key"]["is_backup_cloud"] is False
    assert info["server_address"]["stored"] == {
        "host": "127.0.0.1",
        "port": 5684,
        "default_port": False,
    }


def test_bad_create_input_creates_nothing(tmp_path: Path) -> None:
    rsa_key = tmp_path / "rsa.pub.pem"
    rsa_key.write_bytes(public_key_pem(generate_server_key(Algorithm.RSA).public_key()))
    line = error_line(
        run("sim", "create", "-p", "argon", "--server-key", str(rsa_key), cwd=tmp_path, expect=1)
    )
    assert str(rsa_key) in line and "RSA" in line and "UDP" in line
    line = error_line(run("sim", "create", "-p", "xenon", cwd=tmp_path, expect=1))
    assert "unknown platform 'xenon'" in line
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"\x30\x82\x01\x00garbage")
    line = error_line(
        run("sim", "create", "-p", "photon", "--server-key", str(garbage), cwd=tmp_path, expect=1)
    )
    assert str(garbage) in line
    assert run_json("sim", "list", cwd=tmp_path) == []


def test_brownout_then_boot(tmp_path: Path) -> None:
    [info] = run_json("sim", "create", "-p", "electron", cwd=tmp_path)
    old = info["device_key"]["fingerprint"]["sha256"]
    after = run_json("sim", "fault", info["id"], "--brownout", cwd=tmp_path)
    assert after["device_key"]["fingerprint"]["sha256"] != old
    assert old not in run("sim", "inspect", info["id"], cwd=tmp_path).stdout
    assert after["key_errors"]["mask"] == 5
    again = run_json("sim", "boot", info["id"], cwd=tmp_path)
    assert again["generated_key"] is False
    assert again["device_key"]["fingerprint"] == after["device_key"]["fingerprint"]


def test_fault_without_boot_shows_the_erased_slot(tmp_path: Path) -> None:
    [info] = run_json("sim", "create", "-p", "argon", cwd=tmp_path)
    after = run_json("sim", "fault", info["id"], "--fs-reformat", "--no-boot", cwd=tmp_path)
    assert after["device_key"]["state"] == "erased"
    assert after["diagnosis"][0].startswith("device key erased")


def test_bootloader_fault_reports_a_dead_device_not_bad_keys(tmp_path: Path) -> None:
    [info] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    dead = run_json("sim", "fault", info["id"], "--bootloader", cwd=tmp_path)
    assert dead["firmware"]["state"] == "dead"
    assert "dim blue D7" in dead["firmware"]["fault"]
    assert dead["key_errors"] is None
    assert dead["diagnosis"] == [f"firmware fault: {dead['firmware']['fault']}"]
    text = run("sim", "inspect", info["id"], cwd=tmp_path).stdout
    assert "firmware fault" in text and "PUBLIC_SERVER_KEY_BLANK" not in text
    line = error_line(run("sim", "boot", info["id"], cwd=tmp_path, expect=1))
    assert "dim blue D7" in line and "not a key fault" in line
    line = error_line(run("keys", "save", "x", "--device", info["id"], cwd=tmp_path, expect=1))
    assert "cannot enter DFU mode" in line
    assert not (tmp_path / "x.der").exists()


def test_server_key_fault(tmp_path: Path) -> None:
    [info] = run_json("sim", "create", "-p", "p1", cwd=tmp_path)
    other = tmp_path / "other.pub.pem"
    other.write_bytes(public_key_pem(generate_server_key(Algorithm.RSA).public_key()))
    after = run_json("sim", "fault", info["id"], "--server-key", str(other), cwd=tmp_path)
    assert after["server_key"]["source"] == "dct"
    assert after["server_key"]["is_backup_cloud"] is False
    assert after["key_errors"]["names"] == ["SERVER_ADDRESS_BLANK"]


def test_bad_fault_requests(tmp_path: Path) -> None:
    [info] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    line = error_line(run("sim", "fault", info["id"], cwd=tmp_path, expect=1))
    assert "exactly one fault" in line
    line = error_line(
        run("sim", "fault", info["id"], "--brownout", "--bootloader", cwd=tmp_path, expect=1)
    )
    assert "--brownout, --bootloader" in line
    line = error_line(run("sim", "fault", info["id"], "--fs-reformat", cwd=tmp_path, expect=1))
    assert "Gen 3" in line
    line = error_line(run("sim", "inspect", "0" * 24, cwd=tmp_path, expect=1))
    assert "no such simulated device" in line
