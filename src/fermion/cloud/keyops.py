"""Changing a device's key: append a version, move the pointer, audit, all in one transaction."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store.audit import record
from fermion.cloud.store.models import (
    CandidateStatus,
    Device,
    DeviceKey,
    KeyCandidate,
    KeyHealth,
    utcnow,
)
from fermion.keys import LoadedKey, public_key_der


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
) -> DeviceKey | None:
    """Make ``key`` the device's current key. None when it already is (nothing to record).

    The previous versions stay: a key is never overwritten, only superseded.
    """
    der = public_key_der(key.public)
    new_fp = key.fingerprint.hex
    if current_fingerprint == new_fp:
        return None
    last = await session.scalar(
        select(func.max(DeviceKey.version)).where(DeviceKey.device_id == device.id)
    )
    now = utcnow()
    version = DeviceKey(
        device_id=device.id,
        version=(last or 0) + 1,
        algorithm=key.algorithm.value,
        der=der,
        fingerprint=new_fp,
        source=source,
        created_by=actor,
        created_at=now,
    )
    session.add(version)
    await session.flush()
    device.current_key_id = version.id
    device.updated_at = now
    if device.key_health == KeyHealth.NO_KEY:
        device.key_health = KeyHealth.UNKNOWN
    # A person just vouched for this key: a pending presentation of it is settled.
    await session.execute(
        update(KeyCandidate)
        .where(
            KeyCandidate.device_id == device.id,
            KeyCandidate.fingerprint == new_fp,
            KeyCandidate.status == CandidateStatus.PENDING,
        )
        .values(status=CandidateStatus.APPROVED, decided_by=actor, decided_at=now)
    )
    record(
        session,
        actor,
        action,
        device_id=device.id,
        product_id=device.product_id,
        before=current_fingerprint,
        after=new_fp,
        request_id=request_id,
        detail={"version": version.version, "source": source, **(detail or {})},
    )
    return version
