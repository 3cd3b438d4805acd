"""Booting a simulated device the way Device OS does (reference §2.2).

At boot, and again when the protocol starts, Device OS reads the device key slot for the current
transport; the *only* validity test is whether its first byte is erased (0xFF). If it is, the
firmware generates a new key (RSA-1024 on TCP, EC P-256 on UDP), writes it and the derived public
key, and resets. Then ``Spark_Protocol_Init`` reads the server key and server address: a blank key
(first byte 0xFF) is replaced in RAM by the compiled-in backup and sets ``PUBLIC_SERVER_KEY_BLANK``;
an address of neither type 0 nor 1 is replaced by the backup address and sets
``SERVER_ADDRESS_BLANK``. Nothing else sets a key-error bit in v2.3.1, so a corrupt (non-blank)
slot is used as it is and fails later, in the handshake.

Inferred, not read: we re-derive the public key slot on every boot, not only after generating a
key, so a key written by ``keys load`` is reflected in the public slot after the next reset (the
firmware derives the key it sends from the private key in any case).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from pathlib import Path

from fermion.device import builtin
from fermion.device.dct import (
    Flash,
    decode_private_key_slot,
    decode_public_key_slot,
    is_erased_slot,
    read_private_key_slot,
    read_public_key_slot,
    read_server_address,
    read_server_key_slot,
    write_private_key,
    write_public_key,
)
from fermion.device.store import SimDevice, Status, now_iso
from fermion.errors import FermionError
from fermion.keys import (
    Fingerprint,
    LoadedKey,
    fingerprint,
    generate_device_key,
    load_key,
    private_key_der,
)
from fermion.keys.serverfile import ServerAddress, Transport

DEAD_BOOTLOADER = "bootloader sector erased: the device does not start (dim blue D7)"


class KeyErrors(IntFlag):
    """``particle_key_errors`` (system_cloud.h); published as ``spark/device/key/error``."""

    PUBLIC_SERVER_KEY_BLANK = 1
    PUBLIC_SERVER_KEY_CORRUPTED = 2
    SERVER_ADDRESS_BLANK = 4
    SERVER_ADDRESS_CORRUPTED = 8
    PUBLIC_DEVICE_KEY_BLANK = 16
    PUBLIC_DEVICE_KEY_CORRUPTED = 32
    PRIVATE_DEVICE_KEY_BLANK = 64
    PRIVATE_DEVICE_KEY_CORRUPTED = 128

    def names(self) -> list[str]:
        return [flag.name for flag in KeyErrors if flag in self and flag.name]


@dataclass(frozen=True)
class SlotState:
    """What one key slot holds: ``ok``, ``erased``, ``corrupt`` or (public slot) ``stale``."""

    state: str
    key: LoadedKey | None = None
    detail: str | None = None

    @property
    def fingerprint(self) -> Fingerprint | None:
        return self.key.fingerprint if self.key else None


@dataclass(frozen=True)
class FlashReport:
    """The keys a device's flash holds and what the firmware will make of them."""

    transport: Transport
    private_key: SlotState
    public_key: SlotState
    server_key: SlotState
    server_key_effective: Fingerprint
    server_key_is_backup: bool
    server_address: ServerAddress | None
    server_address_effective: ServerAddress
    key_errors: KeyErrors


def _private_state(flash: Flash, transport: Transport, source: str) -> SlotState:
    slot = read_private_key_slot(flash, transport)
    if is_erased_slot(slot):
        return SlotState("erased")
    try:
        loaded = decode_private_key_slot(slot, f"{source} private key slot")
    except FermionError as exc:
        return SlotState("corrupt", detail=str(exc))
    if loaded.algorithm is not transport.algorithm:
        return SlotState(
            "corrupt",
            loaded,
            f"holds an {loaded.algorithm.value.upper()} key; {transport.value.upper()} "
            f"needs {transport.algorithm.value.upper()}",
        )
    return SlotState("ok", loaded)


def _public_state(flash: Flash, transport: Transport, private: SlotState, source: str) -> SlotState:
    slot = read_public_key_slot(flash, transport)
    if is_erased_slot(slot) or not any(slot):
        return SlotState("erased")
    try:
        loaded = decode_public_key_slot(slot, transport, f"{source} public key slot")
    except FermionError as exc:
        return SlotState("corrupt", detail=str(exc))
    if private.key is not None and loaded.fingerprint != private.key.fingerprint:
        return SlotState("stale", loaded, "does not match the private key")
    return SlotState("ok", loaded)


def _server_state(flash: Flash, transport: Transport, source: str) -> SlotState:
    slot = read_server_key_slot(flash, transport)
    if is_erased_slot(slot):
        return SlotState("erased")
    try:
        loaded = load_key(slot, f"{source} server key slot")
    except FermionError as exc:
        return SlotState("corrupt", detail=str(exc))
    if loaded.algorithm is not transport.algorithm:
        return SlotState("corrupt", loaded, f"holds an {loaded.algorithm.value.upper()} key")
    return SlotState("ok", loaded)


def analyse(flash: Flash, transport: Transport, home: Path, source: str) -> FlashReport:
    """Read every key-related slot for ``transport``; ``home`` (data dir) has the backup cloud."""
    private = _private_state(flash, transport, source)
    public = _public_state(flash, transport, private, source)
    server = _server_state(flash, transport, source)
    backup_fp = fingerprint(builtin.backup_public_key(home, transport))
    errors = KeyErrors(0)
    if server.state == "erased":
        errors |= KeyErrors.PUBLIC_SERVER_KEY_BLANK
        effective = backup_fp
    else:
        # A corrupt slot is used as it is (no bit in v2.3.1); its "fingerprint" is what it holds.
        effective = server.fingerprint or Fingerprint(b"")
    address = read_server_address(flash, transport)
    if address is None:
        errors |= KeyErrors.SERVER_ADDRESS_BLANK
    return FlashReport(
        transport=transport,
        private_key=private,
        public_key=public,
        server_key=server,
        server_key_effective=effective,
        server_key_is_backup=effective == backup_fp,
        server_address=address,
        server_address_effective=address or builtin.BACKUP_ADDRESS[transport],
        key_errors=errors,
    )


@dataclass(frozen=True)
class BootReport:
    device_id: str
    firmware_ok: bool
    firmware_fault: str | None
    generated_key: bool
    flash: FlashReport | None

    @property
    def key_errors(self) -> KeyErrors | None:
        return self.flash.key_errors if self.flash else None


def boot(device: SimDevice) -> BootReport:
    """Reset the device: regenerate a missing key, re-derive the public key, record the status."""
    status = device.load_status()
    if not device.bootloader_intact():
        _record(status, firmware_ok=False, key_errors=None, boots=0)
        device.save_status(status)
        return BootReport(device.id, False, DEAD_BOOTLOADER, False, None)

    image = device.load_image()
    transport = device.transport(image)
    generated = False
    if is_erased_slot(read_private_key_slot(image, transport)):
        key = generate_device_key(transport.algorithm)
        write_private_key(image, transport, private_key_der(key))
        generated = True
    private = _private_state(image, transport, image.source)
    if private.key is not None and private.state == "ok":
        write_public_key(image, transport, private.key.public)
    device.save_image(image)
    report = analyse(image, transport, device.home, image.source)
    # After generating a key Device OS resets once more (HAL_Core_System_Reset).
    _record(
        status, firmware_ok=True, key_errors=int(report.key_errors), boots=2 if generated else 1
    )
    device.save_status(status)
    return BootReport(device.id, True, None, generated, report)


def _record(status: Status, firmware_ok: bool, key_errors: int | None, boots: int) -> None:
    status.firmware = "ok" if firmware_ok else "dead"
    status.firmware_fault = None if firmware_ok else DEAD_BOOTLOADER
    status.key_errors = key_errors
    status.boots += boots
    status.online = False
    if boots:
        status.last_boot = now_iso()
