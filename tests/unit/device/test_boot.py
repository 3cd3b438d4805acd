"""Boot, key regeneration, key-error bits and faults (reference §2.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fermion.device import builtin, faults
from fermion.device.boot import DEAD_BOOTLOADER, KeyErrors, boot
from fermion.device.dct import (
    CLOUD_TRANSPORT_TCP,
    decode_private_key_slot,
    read_private_key_slot,
    read_public_key_slot,
    write_cloud_transport,
    write_private_key,
)
from fermion.device.link import SimLink
from fermion.device.platforms import Platform
from fermion.device.report import describe
from fermion.device.store import SimDevice
from fermion.errors import DeviceError, ServerKeyFileError
from fermion.keys import (
    Algorithm,
    fingerprint,
    generate_server_key,
    private_key_der,
    public_key_der,
    public_key_pem,
)
from fermion.keys.serverfile import Transport

BLANK = KeyErrors.PUBLIC_SERVER_KEY_BLANK | KeyErrors.SERVER_ADDRESS_BLANK


def _fp(device: SimDevice) -> str:
    image = device.load_image()
    slot = read_private_key_slot(image, device.transport(image))
    return decode_private_key_slot(slot, "slot").fingerprint.sha256


def test_key_error_bits_are_the_device_os_values() -> None:
    assert {f.name: int(f) for f in KeyErrors} == {
        "PUBLIC_SERVER_KEY_BLANK": 1,
        "PUBLIC_SERVER_KEY_CORRUPTED": 2,
        "SERVER_ADDRESS_BLANK": 4,
        "SERVER_ADDRESS_CORRUPTED": 8,
        "PUBLIC_DEVICE_KEY_BLANK": 16,
        "PUBLIC_DEVICE_KEY_CORRUPTED": 32,
        "PRIVATE_DEVICE_KEY_BLANK": 64,
        "PRIVATE_DEVICE_KEY_CORRUPTED": 128,
    }


@pytest.mark.parametrize(
    ("platform", "transport", "algorithm"),
    [
        (Platform.PHOTON, Transport.TCP, Algorithm.RSA),
        (Platform.P1, Transport.TCP, Algorithm.RSA),
        (Platform.ELECTRON, Transport.UDP, Algorithm.EC),
        (Platform.ARGON, Transport.UDP, Algorithm.EC),
        (Platform.BORON, Transport.UDP, Algorithm.EC),
    ],
)
def test_first_boot_generates_the_right_key(
    platform: Platform, transport: Transport, algorithm: Algorithm
) -> None:
    device = SimDevice.create(platform)
    report = boot(device)
    assert report.firmware_ok and report.generated_key
    assert report.flash is not None
    assert report.flash.transport is transport
    assert report.flash.private_key.key is not None
    assert report.flash.private_key.key.algorithm is algorithm
    assert report.flash.public_key.state == "ok"
    assert report.key_errors == BLANK
    assert report.flash.server_key_is_backup
    assert device.load_status().key_errors == 5
    # A second boot keeps the key.
    before = _fp(device)
    assert boot(device).generated_key is False
    assert _fp(device) == before


def test_tcp_public_slot_is_der_then_zeros_and_udp_is_der_at_the_end() -> None:
    photon = SimDevice.create(Platform.PHOTON)
    boot(photon)
    slot = read_public_key_slot(photon.load_image(), Transport.TCP)
    assert slot[0] == 0x30 and len(slot) == 384
    assert slot[162:] == bytes(222)
    argon = SimDevice.create(Platform.ARGON)
    boot(argon)
    slot = read_public_key_slot(argon.load_image(), Transport.UDP)
    assert slot[:37] == bytes(37) and slot[37] == 0x30


def test_brownout_regenerates_key_and_saved_key_restores_it(tmp_path: Path) -> None:
    device = SimDevice.create(Platform.PHOTON)
    boot(device)
    link = SimLink(device)
    old_slot = read_private_key_slot(link, Transport.TCP)
    old = _fp(device)

    faults.brownout(device)
    assert device.load_image().to_bytes() == b"\xff" * 16384
    report = boot(device)
    assert report.generated_key
    new = _fp(device)
    assert new != old
    info = describe(device)
    assert old not in str(info)
    assert info["key_errors"] == {
        "mask": 5,
        "names": ["PUBLIC_SERVER_KEY_BLANK", "SERVER_ADDRESS_BLANK"],
    }

    old_key = decode_private_key_slot(old_slot, "x").private
    assert old_key is not None
    write_private_key(link, Transport.TCP, private_key_der(old_key))
    link.reset()
    assert _fp(device) == old
    assert describe(device)["public_key_slot"]["fingerprint"]["sha256"] == old


def test_brownout_points_the_device_back_at_the_backup_cloud(tmp_path: Path) -> None:
    other = generate_server_key(Algorithm.RSA)
    keyfile = tmp_path / "cloud.pub.pem"
    keyfile.write_bytes(public_key_pem(other.public_key()))
    device = SimDevice.create(Platform.P1)
    faults.overwrite_server_key(device, keyfile)
    boot(device)
    assert describe(device)["server_key"]["is_backup_cloud"] is False
    assert boot(device).key_errors == KeyErrors.SERVER_ADDRESS_BLANK
    faults.brownout(device)
    report = boot(device)
    assert report.key_errors == BLANK
    assert report.flash is not None and report.flash.server_key_is_backup


def test_brownout_is_gen2_and_reformat_is_gen3() -> None:
    with pytest.raises(DeviceError, match="Gen 2 fault; a argon is Gen 3"):
        faults.brownout(SimDevice.create(Platform.ARGON))
    with pytest.raises(DeviceError, match="Gen 3 fault; a photon is Gen 2"):
        faults.fs_reformat(SimDevice.create(Platform.PHOTON))


def test_fs_reformat_loses_ec_keys_but_factory_reset_keeps_them() -> None:
    device = SimDevice.create(Platform.BORON)
    boot(device)
    first = _fp(device)
    faults.factory_reset(device)
    report = boot(device)
    assert not report.generated_key
    assert _fp(device) == first
    assert report.key_errors == KeyErrors(0)  # the backup key and address were written back
    faults.fs_reformat(device)
    report = boot(device)
    assert report.generated_key
    assert _fp(device) != first
    assert report.key_errors == BLANK


def test_bootloader_fault_is_a_firmware_fault_not_a_key_fault() -> None:
    device = SimDevice.create(Platform.ELECTRON)
    boot(device)
    faults.erase_bootloader(device)
    report = boot(device)
    assert not report.firmware_ok
    assert report.firmware_fault == DEAD_BOOTLOADER
    assert "dim blue D7" in DEAD_BOOTLOADER
    assert report.key_errors is None
    info = describe(device)
    assert info["firmware"]["state"] == "dead"
    assert info["key_errors"] is None
    assert info["diagnosis"] == [f"firmware fault: {DEAD_BOOTLOADER}"]
    assert not any("key" in line for line in info["diagnosis"])
    assert device.load_status().firmware == "dead"
    with pytest.raises(DeviceError, match="cannot enter DFU mode"):
        SimLink(device)


def test_server_key_fault_needs_the_transport_algorithm(tmp_path: Path) -> None:
    keyfile = tmp_path / "ec.der"
    keyfile.write_bytes(public_key_der(generate_server_key(Algorithm.EC).public_key()))
    device = SimDevice.create(Platform.PHOTON)
    with pytest.raises(ServerKeyFileError, match=r"ec.der: is an EC key but .* needs RSA"):
        faults.overwrite_server_key(device, keyfile)
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"not a key at all")
    with pytest.raises(ServerKeyFileError, match=r"garbage\.der"):
        faults.overwrite_server_key(device, garbage)


def test_electron_switches_transport_and_brownout_returns_it_to_udp() -> None:
    device = SimDevice.create(Platform.ELECTRON)
    boot(device)
    udp = _fp(device)
    image = device.load_image()
    write_cloud_transport(image, CLOUD_TRANSPORT_TCP)
    device.save_image(image)
    report = boot(device)
    assert report.flash is not None and report.flash.transport is Transport.TCP
    assert report.generated_key
    assert report.flash.private_key.key is not None
    assert report.flash.private_key.key.algorithm is Algorithm.RSA
    faults.brownout(device)
    report = boot(device)
    assert report.flash is not None and report.flash.transport is Transport.UDP
    assert _fp(device) != udp


def test_corrupt_key_is_used_as_is_with_no_key_error_bits() -> None:
    device = SimDevice.create(Platform.PHOTON)
    boot(device)
    image = device.load_image()
    write_private_key(image, Transport.TCP, b"\x30\x82garbage")
    device.save_image(image)
    report = boot(device)
    assert not report.generated_key  # first byte is not 0xFF: Device OS keeps it
    assert report.flash is not None
    assert report.flash.private_key.state == "corrupt"
    assert report.key_errors == BLANK  # v2.3.1 sets only the two BLANK bits
    assert any("corrupt" in line for line in describe(device)["diagnosis"])


def test_backup_cloud_key_is_one_per_data_dir(fermion_home: Path) -> None:
    first = builtin.backup_public_key(fermion_home, Transport.TCP)
    again = builtin.backup_public_key(fermion_home, Transport.TCP)
    assert fingerprint(first) == fingerprint(again)
    assert (fermion_home / "backup-cloud" / "rsa.pub.der").exists()
    private = builtin.backup_private_key(fermion_home, Transport.TCP)
    assert fingerprint(private) == fingerprint(first)


def test_unknown_device_and_platform() -> None:
    with pytest.raises(DeviceError, match="no such simulated device"):
        SimDevice.open("0" * 24)
    with pytest.raises(DeviceError, match="24 hex digits"):
        SimDevice.open("xyz")
    with pytest.raises(DeviceError, match="unknown platform 'xenon'"):
        Platform.parse("xenon")


def test_status_schema_round_trip() -> None:
    device = SimDevice.create(Platform.ARGON)
    status = device.load_status()
    status.online = True
    status.last_protocol_error = {"code": 10, "name": "MESSAGE_TIMEOUT", "message": "", "at": "x"}
    device.save_status(status)
    boot(device)  # a boot marks it offline and keeps the simulator's record
    again = device.load_status()
    assert again.online is False
    assert again.last_protocol_error is not None and again.last_protocol_error["code"] == 10
    assert again.boots == 2 and again.firmware == "ok"
