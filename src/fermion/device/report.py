"""A simulated device's state as plain data (what ``sim inspect --json`` prints).

A dead device (bootloader erased) is diagnosed as a firmware fault and reports no key errors:
it never runs Device OS, so nothing would publish them, and calling it "bad keys" would send its
owner to repair keys that are fine.
"""

from __future__ import annotations

from typing import Any

from fermion.device.boot import DEAD_BOOTLOADER, FlashReport, SlotState, analyse
from fermion.device.dct import read_claim_code, read_claimed
from fermion.device.store import SimDevice
from fermion.keys import Fingerprint
from fermion.keys.serverfile import ServerAddress


def fingerprint_json(fp: Fingerprint | None) -> dict[str, str] | None:
    if fp is None or not fp.digest:
        return None
    return {"sha256": fp.sha256, "short": fp.short}


def _slot_json(slot: SlotState) -> dict[str, Any]:
    return {
        "state": slot.state,
        "algorithm": slot.key.algorithm.value if slot.key else None,
        "fingerprint": fingerprint_json(slot.fingerprint),
        "detail": slot.detail,
    }


def _address_json(address: ServerAddress, transport_default_port: int) -> dict[str, Any]:
    return {
        "host": address.host,
        "port": address.port if address.port is not None else transport_default_port,
        "default_port": address.port is None,
    }


def diagnose(firmware_ok: bool, flash: FlashReport) -> list[str]:
    """One line per problem, most fundamental first; ``["ok"]`` when there is none."""
    if not firmware_ok:
        return [f"firmware fault: {DEAD_BOOTLOADER}"]
    problems = []
    if flash.private_key.state == "erased":
        problems.append("device key erased: a new key is generated at the next boot")
    elif flash.private_key.state == "corrupt":
        problems.append(f"device key corrupt: {flash.private_key.detail}")
    if flash.public_key.state in {"stale", "erased"} and flash.private_key.state == "ok":
        problems.append("public key slot out of date: rewritten at the next boot")
    if flash.server_key.state == "erased":
        problems.append("server key blank: using the built-in backup cloud's key")
    elif flash.server_key.state == "corrupt":
        problems.append(f"server key corrupt: {flash.server_key.detail}")
    if flash.server_address is None:
        problems.append("server address blank: using the built-in backup address")
    return problems or ["ok"]


def describe(device: SimDevice) -> dict[str, Any]:
    image = device.load_image()
    transport = device.transport(image)
    flash = analyse(image, transport, device.home, image.source)
    status = device.load_status()
    firmware_ok = device.bootloader_intact()
    port = transport.default_port
    return {
        "id": device.id,
        "platform": device.platform.value,
        "platform_id": device.platform.id,
        "generation": device.platform.generation,
        "transport": transport.value,
        "firmware": {
            "state": "ok" if firmware_ok else "dead",
            "fault": None if firmware_ok else DEAD_BOOTLOADER,
        },
        "device_key": _slot_json(flash.private_key),
        "public_key_slot": _slot_json(flash.public_key),
        "server_key": {
            **_slot_json(flash.server_key),
            "source": "backup" if flash.server_key.state == "erased" else "dct",
            "effective_fingerprint": fingerprint_json(flash.server_key_effective),
            "is_backup_cloud": flash.server_key_is_backup,
        },
        "server_address": {
            "stored": _address_json(flash.server_address, port) if flash.server_address else None,
            "effective": _address_json(flash.server_address_effective, port),
            "source": "dct" if flash.server_address else "backup",
        },
        # Key errors are what the firmware would publish; a dead device publishes nothing.
        "key_errors": (
            {"mask": int(flash.key_errors), "names": flash.key_errors.names()}
            if firmware_ok
            else None
        ),
        "diagnosis": diagnose(firmware_ok, flash),
        "claim_code": read_claim_code(image),
        "claimed": read_claimed(image),
        "key_backup": device.identity.key_backup,
        "status": status.to_json(),
    }
