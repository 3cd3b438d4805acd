"""DeviceKeyHelperRK in a running simulated device: when it backs up, when it restores."""

from __future__ import annotations

from pathlib import Path

import pytest

from fermion.device import faults, keymonitor
from fermion.device.boot import boot
from fermion.device.dct import read_private_key_slot
from fermion.device.online import DeviceRunner, ProtocolError, _Attempt
from fermion.device.platforms import Platform
from fermion.device.store import SimDevice
from fermion.errors import DeviceError
from fermion.keys.serverfile import Transport


def device_with_backup(home: Path, kind: str | None = "eeprom") -> SimDevice:
    device = SimDevice.create(Platform.parse("photon", "test"), home, key_backup=kind)
    boot(device)
    return device


def key_slot(device: SimDevice) -> bytes:
    return read_private_key_slot(device.load_image(), Transport.TCP)


def test_the_choice_is_part_of_the_identity(tmp_path: Path) -> None:
    device = device_with_backup(tmp_path, "file")
    assert SimDevice.open(device.id, tmp_path).identity.key_backup == "file"
    plain = device_with_backup(tmp_path, None)
    assert "key_backup" not in (plain.folder / "identity.json").read_text()
    with pytest.raises(DeviceError, match="not one of eeprom, file"):
        SimDevice.create(Platform.parse("photon", "test"), tmp_path, key_backup="fram")


@pytest.mark.parametrize(
    ("state", "code", "expected"),
    [
        ("keys_refused", 26, True),  # hung up before the key block
        ("keys_refused", int(ProtocolError.IO_ERROR), True),  # Fermion: proved, then hung up
        ("server_key_wrong", 26, True),  # the library only sees the code
        ("unreachable", None, False),
        ("disconnected", int(ProtocolError.PING_TIMEOUT), False),
    ],
)
def test_keys_error_is_26_on_tcp_or_a_refused_key(state: str, code: int | None, expected: bool):
    assert keymonitor.is_keys_error(Transport.TCP, state, code) is expected


def test_udp_keys_error_is_10() -> None:
    assert keymonitor.is_keys_error(Transport.UDP, "failed", 10)
    assert not keymonitor.is_keys_error(Transport.UDP, "failed", 26)


def test_connected_backs_up_then_keys_error_restores_and_resets(tmp_path: Path) -> None:
    device = device_with_backup(tmp_path)
    good = key_slot(device)
    assert keymonitor.on_connected(device).saved  # type: ignore[union-attr]
    assert device.load_status().extra["key_backup"]["event"] == "saved"
    assert not keymonitor.on_connected(device).saved  # type: ignore[union-attr]  # unchanged

    faults.brownout(device)
    boot(device)  # Device OS makes a new key the cloud does not hold
    assert key_slot(device) != good
    boots = device.load_status().boots

    result = keymonitor.on_keys_error(device)
    assert result is not None and result.restored and result.reset_requested
    assert key_slot(device) == good
    status = device.load_status()
    assert status.boots == boots + 1  # reset
    assert status.extra["key_backup"]["event"] == "restored"
    assert keymonitor.RESTORED_MESSAGE in status.extra["key_backup"]["message"]


def test_keys_error_with_the_backed_up_keys_changes_nothing(tmp_path: Path) -> None:
    device = device_with_backup(tmp_path, "file")
    keymonitor.on_connected(device)
    before = device.dct_path.read_bytes()
    result = keymonitor.on_keys_error(device)
    assert result is not None and result.ok and not result.restored
    assert device.dct_path.read_bytes() == before


def test_no_helper_no_action(tmp_path: Path) -> None:
    device = device_with_backup(tmp_path, None)
    assert keymonitor.on_connected(device) is None
    assert keymonitor.on_keys_error(device) is None
    assert not (device.folder / "eeprom.bin").exists()


def test_runner_restores_only_on_a_keys_error(tmp_path: Path) -> None:
    device = device_with_backup(tmp_path)
    good = key_slot(device)
    keymonitor.on_connected(device)
    faults.brownout(device)
    boot(device)
    runner = DeviceRunner(device)
    unreachable = _Attempt("fast cyan", "unreachable", message="cannot connect")
    assert not runner._restored_keys(unreachable, None)
    assert key_slot(device) != good

    refused = _Attempt(
        "fast cyan with red blink",
        "keys_refused",
        ProtocolError.IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY,
        "the cloud hung up before the key block",
    )
    assert runner._restored_keys(refused, "127.0.0.1:5683")
    assert key_slot(device) == good
    cloud = device.load_status().extra["cloud"]
    assert cloud["message"].startswith("keys restored from backup")
