"""Changing a device's key: append a version, move the pointer, audit, all in one transaction.

This is the key-upload hot path, so its statements are prepared once, run through SQLAlchemy
Core (no ORM unit of work), and the loaded ``Device`` is told the new values directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from fermion.cloud.store.audit import record_now
from fermion.cloud.store.models import (
    CandidateStatus,
    Device,
    DeviceKey,
    KeyCandidate,
    KeyHealth,
    utcnow,
)
from fermion.keys import LoadedKey, public_key_der

_keys = DeviceKey.__table__
_devices = Device.__table__
_candidates = KeyCandidate.__table__

_NEXT_VERSION = select(func.coalesce(func.max(_keys.c.version), 0) + 1).where(
    _keys.c.device_id == bindparam("device_id")
)
_INSERT_KEY = insert(_keys).returning(_keys.c.id)
_POINT = (
    update(_devices)
    .where(_devices.c.id == bindparam("_device_id"))
    .values(
        current_key_id=bindparam("_key_id"),
        updated_at=bindparam("_now"),
        key_health=case(
            (_devices.c.key_health == KeyHealth.NO_KEY.value, KeyHealth.UNKNOWN.value),
            else_=_devices.c.key_health,
        ),
    )
)
# A person just vouched for this key: a pending presentation of it is settled.
_SETTLE = (
    update(_candidates)
    .where(
        _candidates.c.device_id == bindparam("_device_id"),
        _candidates.c.fingerprint == bindparam("_fingerprint"),
        _candidates.c.status == CandidateStatus.PENDING.value,
    )
    .values(
        status=CandidateStatus.APPROVED.value,
        decided_by=bindparam("_actor"),
        decided_at=bindparam("_now"),
    )
)


@dataclass(frozen=True)
class KeyVersion:
    id: int
    version: int


async def set_device_key(
    session: AsyncSession,
    device: Device,
    key: LoadedKey,
    *,
    source: str,
    actor: str,
    action: str,
    request_id: str | None,
    current_fingerprint: str | None,
    detail: dict[str, object] | None = None,
) -> KeyVersion | None:
    """Make ``key`` the device's current key. None when it already is (nothing to record).

    The previous versions stay: a key is never overwritten, only superseded.
    """
    new_fp = key.fingerprint.hex
    if current_fingerprint == new_fp:
        return None
    await session.flush()  # a device created in this transaction must exist first
    now = utcnow()
    version = await session.scalar(_NEXT_VERSION, {"device_id": device.id})
    key_id = await session.scalar(
        _INSERT_KEY,
        {
            "device_id": device.id,
            "version": version,
            "algorithm": key.algorithm.value,
            "der": public_key_der(key.public),
            "fingerprint": new_fp,
            "source": source,
            "created_by": actor,
            "created_at": now,
        },
    )
    await session.execute(_POINT, {"_device_id": device.id, "_key_id": key_id, "_now": now})
    set_committed_value(device, "current_key_id", key_id)
    set_committed_value(device, "updated_at", now)
    if device.key_health == KeyHealth.NO_KEY:
        set_committed_value(device, "key_health", KeyHealth.UNKNOWN.value)
    await session.execute(
        _SETTLE,
        {"_device_id": device.id, "_fingerprint": new_fp, "_actor": actor, "_now": now},
    )
    await record_now(
        session,
        actor,
        action,
        device_id=device.id,
        product_id=device.product_id,
        before=current_fingerprint,
        after=new_fp,
        request_id=request_id,
        detail={"version": version, "source": source, **(detail or {})},
    )
    assert key_id is not None and version is not None
    return KeyVersion(key_id, version)
