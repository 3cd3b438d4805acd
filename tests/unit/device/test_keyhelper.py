"""DeviceKeyHelperRK model: record layout (by hand) and check() semantics (reference §4)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fermion.device import faults
from fermion.device.boot import boot
from fermion.device.dct import DctImage, decode_private_key_slot, read_private_key_slot
from fermion.device.keyhelper import (
    KEY_RANGE,
    CheckMode,
    EepromStore,
    FileStore,
    check,
    decode_record,
    device_store,
    encode_record,
)
from fermion.device.link import SimLink
from fermion.device.platforms import Platform
from fermion.device.store import SimDevice
from fermion.errors import DeviceError
from fermion.keys.serverfile import Transport


def test_key_ranges_are_the_library_constants() -> None:
    assert (KEY_RANGE[Transport.TCP].offset, KEY_RANGE[Transport.TCP].size) == (34, 1600)
    assert (KEY_RANGE[Transport.UDP].offset, KEY_RANGE[Transport.UDP].size) == (3106, 320)


def test_record_layout_by_hand() -> None:
    keys = bytes([1, 2, 3, 250, 250])
    record = encode_record(keys)
    # magic 0x75a65c63 little-endian, size 5, sum 506 = 0x01fa, then the keys.
    assert record == bytes([0x63, 0x5C, 0xA6, 0x75, 5, 0, 0xFA, 0x01]) + keys
    assert decode_record(record, 5) == keys
    assert len(encode_record(bytes(1600))) == 1608
    assert len(encode_record(bytes(320))) == 328


def test_checksum_wraps_at_16_bits() -> None:
    keys = b"\xff" * 1600  # 408000 & 0xffff
    assert struct.unpack_from("<H", encode_record(keys), 6)[0] == 408000 & 0xFFFF


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: b"\x00" + r[1:],  # magic
        lambda r: r[:4] + b"\x04\x00" + r[6:],  # size
        lambda r: r[:6] + b"\x00\x00" + r[8:],  # sum
        lambda r: r[:-1] + bytes([r[-1] ^ 1]),  # a key byte
        lambda r: r[:5],  # truncated
    ],
)
def test_invalid_records_are_rejected(mutate) -> None:  # type: ignore[no-untyped-def]
    record = encode_record(bytes([9, 8, 7, 6, 5]))
    assert decode_record(mutate(record), 5) is None
    assert decode_record(None, 5) is None


def _image_with(keys: bytes, transport: Transport) -> DctImage:
    image = DctImage.erased()
    image.write_region(KEY_RANGE[transport].offset, keys)
    return image


def test_check_saves_when_nothing_is_stored_and_skips_an_identical_record(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "keys.dat")
    image = _image_with(b"\x30" * 320, Transport.UDP)
    result = check(image, Transport.UDP, store, CheckMode.AUTOMATIC)
    assert result.ok and result.saved and not result.restored
    stored = (tmp_path / "keys.dat").read_bytes()
    assert decode_record(stored, 320) == b"\x30" * 320
    result = check(image, Transport.UDP, store, CheckMode.SAVE_CURRENT)
    assert result.ok and not result.saved


@pytest.mark.parametrize(
    ("mode", "restored", "reset"),
    [
        (CheckMode.CHECK_ONLY, False, False),
        (CheckMode.AUTOMATIC, True, True),
        (CheckMode.AUTOMATIC_NO_RESTART, True, False),
    ],
)
def test_check_modes_when_keys_changed(
    tmp_path: Path, mode: CheckMode, restored: bool, reset: bool
) -> None:
    store = EepromStore(tmp_path / "eeprom.bin", offset=100)
    good = bytes(range(256)) * 6 + bytes(64)
    image = _image_with(good, Transport.TCP)
    assert check(image, Transport.TCP, store, CheckMode.SAVE_CURRENT).saved
    image.write_region(34, b"\x31" * 1600)
    result = check(image, Transport.TCP, store, mode)
    assert result.ok is False
    assert result.restored is restored
    assert result.reset_requested is reset
    on_device = image.read_region(34, 1600)
    assert (on_device == good) is restored


def test_save_current_overwrites_the_backup(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "keys.dat")
    image = _image_with(b"\x01" * 320, Transport.UDP)
    check(image, Transport.UDP, store, CheckMode.SAVE_CURRENT)
    image.write_region(3106, b"\x02" * 320)
    result = check(image, Transport.UDP, store, CheckMode.SAVE_CURRENT)
    assert result.ok and result.saved
    assert decode_record(store.load(320), 320) == b"\x02" * 320


def test_eeprom_record_must_fit(tmp_path: Path) -> None:
    store = EepromStore(tmp_path / "eeprom.bin", offset=3000)
    with pytest.raises(DeviceError, match="does not fit the 4096-byte EEPROM"):
        store.save(encode_record(bytes(1600)))


def test_helper_restores_the_key_a_brownout_erased(tmp_path: Path) -> None:
    device = SimDevice.create(Platform.PHOTON)
    boot(device)
    link = SimLink(device)
    store = device_store(device, "eeprom")
    assert check(link, Transport.TCP, store, CheckMode.SAVE_CURRENT).saved
    old = decode_private_key_slot(read_private_key_slot(link, Transport.TCP), "x").fingerprint

    faults.brownout(device)
    boot(device)  # regenerates
    assert (
        decode_private_key_slot(read_private_key_slot(link, Transport.TCP), "x").fingerprint != old
    )
    result = check(link, Transport.TCP, store, CheckMode.AUTOMATIC)
    assert result.restored and result.reset_requested
    link.reset()
    assert (
        decode_private_key_slot(read_private_key_slot(link, Transport.TCP), "x").fingerprint == old
    )


def test_file_store_lives_in_the_device_folder() -> None:
    device = SimDevice.create(Platform.ARGON)
    boot(device)
    store = device_store(device, "file")
    assert check(SimLink(device), Transport.UDP, store, CheckMode.SAVE_CURRENT).saved
    assert len((device.folder / "keyhelper.dat").read_bytes()) == 328
    with pytest.raises(DeviceError, match="not eeprom or file"):
        device_store(device, "sd")
