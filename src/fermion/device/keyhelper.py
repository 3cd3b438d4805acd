"""A model of rickkas7/DeviceKeyHelperRK v0.0.4 (reference §4): a backup of the key range.

The library copies one fixed DCT range, read in a single call:

- TCP: 34 + 1600 bytes (``device_private_key`` then ``device_public_key``).
- UDP: 3106 + 320 bytes. That is ``alt_device_private_key`` and the *first 128 bytes of
  ``alt_server_public_key``*, not the EC public key (which sits before, at 2978). We copy the same
  range, so a restore also rewrites part of the server key slot, as the library does.

The saved record is the C struct as an ARM (little-endian) device stores it::

    u32 magic = 0x75a65c63 | u16 size | u16 sum (16-bit wrapping sum of keys) | keys[size]

Stores: ``EepromStore`` (a file standing for the emulated EEPROM, record at an offset) and
``FileStore`` (a file on the device's file system). The simulator wires ``check`` to the cloud
connection in a later issue; this module is the data format and the check logic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from fermion.device.dct import Flash, Region
from fermion.device.store import SimDevice
from fermion.errors import DeviceError
from fermion.fsutil import atomic_write
from fermion.keys.serverfile import Transport

MAGIC = 0x75A65C63
HEADER = struct.Struct("<IHH")
KEY_RANGE = {Transport.TCP: Region(34, 1216 + 384), Transport.UDP: Region(3106, 192 + 128)}
# ProtocolError codes the library treats as "keys error" (26 on TCP, 10 on UDP).
KEYS_ERROR_CODES = {Transport.TCP: 26, Transport.UDP: 10}
EEPROM_SIZE = 4096


class CheckMode(Enum):
    CHECK_ONLY = "check_only"
    SAVE_CURRENT = "save_current"
    AUTOMATIC = "automatic"
    AUTOMATIC_NO_RESTART = "automatic_no_restart"


def checksum(keys: bytes) -> int:
    return sum(keys) & 0xFFFF


def encode_record(keys: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(keys), checksum(keys)) + keys


def decode_record(data: bytes | None, size: int) -> bytes | None:
    """The keys of a valid record of ``size`` key bytes, else None (the library's ``validate``)."""
    if data is None or len(data) < HEADER.size + size:
        return None
    magic, stored_size, stored_sum = HEADER.unpack_from(data)
    keys = data[HEADER.size : HEADER.size + size]
    if magic != MAGIC or stored_size != size or stored_sum != checksum(keys):
        return None
    return keys


class Store(Protocol):
    def load(self, size: int) -> bytes | None: ...

    def save(self, record: bytes) -> None: ...


@dataclass(frozen=True)
class FileStore:
    """``DeviceKeyHelperSpiffsParticle`` / ``FlasheeFile``: the record is a whole file."""

    path: Path

    def load(self, size: int) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, record: bytes) -> None:
        atomic_write(self.path, record, mode=0o600)


@dataclass(frozen=True)
class EepromStore:
    """``DeviceKeyHelperEEPROM(offset)``: the record at ``offset`` of an erased (0xFF) EEPROM."""

    path: Path
    offset: int = 0
    size: int = EEPROM_SIZE

    def _read_all(self) -> bytes:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return b"\xff" * self.size
        return data.ljust(self.size, b"\xff")

    def load(self, size: int) -> bytes | None:
        end = self.offset + HEADER.size + size
        if end > self.size:
            raise DeviceError(
                f"{self.path}: a {HEADER.size + size}-byte key record at {self.offset} does not "
                f"fit the {self.size}-byte EEPROM"
            )
        return self._read_all()[self.offset : end]

    def save(self, record: bytes) -> None:
        if self.offset + len(record) > self.size:
            raise DeviceError(
                f"{self.path}: a {len(record)}-byte key record at {self.offset} does not fit the "
                f"{self.size}-byte EEPROM"
            )
        data = bytearray(self._read_all())
        data[self.offset : self.offset + len(record)] = record
        atomic_write(self.path, bytes(data), mode=0o600)


def device_store(device: SimDevice, kind: str = "eeprom", offset: int = 0) -> Store:
    """The store a simulated device's application uses: ``eeprom.bin`` or ``keyhelper.dat``."""
    if kind == "eeprom":
        return EepromStore(device.folder / "eeprom.bin", offset)
    if kind == "file":
        return FileStore(device.folder / "keyhelper.dat")
    raise DeviceError(f"key helper store: {kind!r} is not eeprom or file")


@dataclass(frozen=True)
class CheckResult:
    """``ok`` is what ``check`` returns: False when the keys on the device changed."""

    ok: bool
    saved: bool = False
    restored: bool = False
    reset_requested: bool = False


def check(flash: Flash, transport: Transport, store: Store, mode: CheckMode) -> CheckResult:
    """DeviceKeyHelper::check, step for step (reference §4)."""
    region = KEY_RANGE[transport]
    on_device = flash.read_region(region.offset, region.size)
    saved_keys = decode_record(store.load(region.size), region.size)
    save = False
    if saved_keys is not None:
        if mode is CheckMode.SAVE_CURRENT:
            save = True
        elif on_device != saved_keys:
            if mode is CheckMode.CHECK_ONLY:
                return CheckResult(ok=False)
            flash.write_region(region.offset, saved_keys)
            return CheckResult(
                ok=False, restored=True, reset_requested=mode is not CheckMode.AUTOMATIC_NO_RESTART
            )
    else:
        save = True
    if save and saved_keys == on_device:
        save = False
    if save:
        store.save(encode_record(on_device))
    return CheckResult(ok=True, saved=save)
