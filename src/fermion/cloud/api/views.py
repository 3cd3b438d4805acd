"""How rows look on the wire (Particle's field names, plus Fermion's key fields)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from fermion.cloud.devices.registry import load_addresses
from fermion.cloud.store.models import AuditEvent, CandidateStatus, DeviceKey, KeyCandidate
from fermion.cloud.store.queries import DeviceRow
from fermion.keys import Algorithm, Fingerprint, load_key, public_key_pem


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None


def fp(hex_digest: str | None) -> str | None:
    """A stored SHA-256 hex digest as people read fingerprints: ``SHA256:<base64>``."""
    if not hex_digest:
        return None
    try:
        return Fingerprint(bytes.fromhex(hex_digest)).sha256
    except ValueError:
        return hex_digest


@functools.lru_cache(maxsize=256)
def spki_pem(der: bytes) -> str:
    """A stored public key (SPKI DER) as PEM, the form people and tools paste."""
    return public_key_pem(load_key(der, "stored key").public).decode()


def device_json(row: DeviceRow) -> dict[str, Any]:
    d = row.device
    return {
        "id": d.id,
        "name": d.name,
        "owner": row.owner_email,
        "last_ip_address": d.last_ip_address,
        "last_heard": iso(d.last_heard),
        "last_handshake_at": iso(d.last_handshake_at),
        "product_id": d.product_id if d.product_id is not None else d.platform_id,
        "online": d.online,
        "connected": d.online,
        "platform_id": d.platform_id,
        "cellular": False,
        "notes": d.notes,
        "functions": [],
        "variables": {},
        "status": "normal",
        "serial_number": None,
        "firmware_updates_enabled": True,
        "firmware_updates_forced": False,
        # Fermion's own
        "transport": d.transport,
        "customer": row.customer_email,
        "key_health": d.key_health,
        "key_fingerprint": fp(row.key_fingerprint),
        "key_algorithm": Algorithm(row.key_algorithm).api_name if row.key_algorithm else None,
        "last_outcome": d.last_outcome,
    }


def key_json(key: DeviceKey, current_id: int | None) -> dict[str, Any]:
    return {
        "version": key.version,
        "algorithm": Algorithm(key.algorithm).api_name,
        "fingerprint": fp(key.fingerprint),
        "source": key.source,
        "created_by": key.created_by,
        "created_at": iso(key.created_at),
        "current": key.id == current_id,
        "public_key": spki_pem(key.der),
    }


def candidate_json(c: KeyCandidate) -> dict[str, Any]:
    return {
        "id": c.id,
        "device_id": c.device_id,
        "fingerprint": fp(c.fingerprint),
        "algorithm": Algorithm(c.algorithm).api_name,
        # The presented key itself, so a repair can send it without a copy from the device.
        "public_key": spki_pem(c.der),
        "first_seen": iso(c.first_seen),
        "last_seen": iso(c.last_seen),
        "count": c.count,
        "remote_address": c.remote_address,
        # Every distinct address that presented it (the last 8), and whether one of them is an
        # address the device never handshook from with its current key.
        "addresses": candidate_addresses(c),
        "new_address": bool(c.new_address),
        "possession_proven": c.possession_proven,
        "status": c.status,
        "decided_by": c.decided_by,
        "decided_at": iso(c.decided_at),
    }


def candidate_addresses(c: KeyCandidate) -> list[str]:
    return load_addresses(c.addresses) or ([c.remote_address] if c.remote_address else [])


def candidate_summary(candidates: list[KeyCandidate], dropped: int) -> dict[str, Any]:
    """What the pending presented keys of one device add up to: proof of possession proves
    that someone holds a key, not that it is the device, so a person deciding needs to see how
    many keys and addresses are asking, and which came from where the device never was."""
    pending = [c for c in candidates if c.status == CandidateStatus.PENDING]
    addresses = {a for c in pending for a in candidate_addresses(c)}
    return {
        "pending": len(pending),
        "distinct_keys": len({c.fingerprint for c in pending}),
        "distinct_addresses": len(addresses),
        "from_new_addresses": sum(1 for c in pending if c.new_address),
        # Presented keys not kept: the device had its share pending (see docs/security.md).
        "dropped": dropped,
    }


def audit_json(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": iso(e.at),
        "actor": e.actor,
        "action": e.action,
        "device_id": e.device_id,
        "product_id": e.product_id,
        "before_fingerprint": fp(e.before_fingerprint),
        "after_fingerprint": fp(e.after_fingerprint),
        "request_id": e.request_id,
        "detail": e.detail,
    }
