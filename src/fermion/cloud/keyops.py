"""Changing a device's key: append a version, move the pointer, audit, all in one transaction.

This is the key-upload hot path: four Core statements (no ORM unit of work), each built once.
``append_key_version`` runs them on any ``Runner`` (the driver connection of
``Store.direct_write``, or a session); ``set_device_key`` is the same for code that holds an
ORM ``Device`` in a session, and tells that object the new values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NotRequired, TypedDict, Unpack

from sqlalchemy import bindparam, case, func, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from fermion.cloud.devices import keywatch
from fermion.cloud.store.audit import record_now
from fermion.cloud.store.direct import Runner, SessionRunner
from fermion.cloud.store.models import (
    CandidateStatus,
    Device,
    DeviceKey,
    KeyCandidate,
    KeyHealth,
    utcnow,
)
from fermion.keys import Algorithm, LoadedKey, fingerprint_der, public_key_der

_keys = DeviceKey.__table__
_devices = Device.__table__
_candidates = KeyCandidate.__table__


def _typed(name: str) -> object:
    """A bind for ``device_keys.<name>``, with the column's type (its bind processing)."""
    return bindparam(name, type_=_keys.c[name].type)


# The next version number and the insert in one statement: the device row is locked (or, on
# SQLite, the database) for the whole transaction, so nobody else can take the same number.
_INSERT_NEXT_VERSION = (
    insert(_keys)
    .from_select(
        [
            "device_id",
            "version",
            "algorithm",
            "der",
            "fingerprint",
            "source",
            "created_by",
            "created_at",
        ],
        select(
            _typed("device_id"),
            func.coalesce(func.max(_keys.c.version), literal_column("0")) + literal_column("1"),
            _typed("algorithm"),
            _typed("der"),
            _typed("fingerprint"),
            _typed("source"),
            _typed("created_by"),
            _typed("created_at"),
        ).where(_keys.c.device_id == bindparam("device_id")),
    )
    .returning(_keys.c.id, _keys.c.version)
)
_POINT = (
    update(_devices)
    .where(_devices.c.id == bindparam("_device_id"))
    .values(
        current_key_id=bindparam("_key_id"),
        updated_at=bindparam("_now"),
        # The addresses a device used vouch for it only with the key it used there.
        known_addresses="[]",
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
class NewKey:
    """A public key as stored: its SPKI DER and fingerprint, computed once."""

    algorithm: Algorithm
    der: bytes
    fingerprint: str  # SHA-256 hex of ``der``

    @classmethod
    def of(cls, key: LoadedKey) -> NewKey:
        der = public_key_der(key.public)
        return cls(key.algorithm, der, fingerprint_der(der).hex)


@dataclass(frozen=True)
class KeyVersion:
    id: int
    version: int
    at: datetime


async def settle_candidate(
    runner: Runner, device_id: str, fingerprint: str, *, actor: str, at: datetime
) -> None:
    """A person vouched for ``fingerprint`` as the device's key: its pending presentation (if
    any) is approved. The one place a candidate is approved; ``append_key_version`` calls it."""
    await runner.execute(
        _SETTLE, {"_device_id": device_id, "_fingerprint": fingerprint, "_actor": actor, "_now": at}
    )


async def append_key_version(
    runner: Runner,
    device_id: str,
    product_id: int | None,
    key: NewKey,
    *,
    source: str,
    actor: str,
    action: str,
    request_id: str | None,
    current_fingerprint: str | None,
    detail: dict[str, object] | None = None,
) -> KeyVersion | None:
    """Make ``key`` the device's current key. None when it already is (nothing to record).

    The previous versions stay: a key is never overwritten, only superseded. The device row
    must exist (flushed) in the runner's transaction.
    """
    if current_fingerprint == key.fingerprint:
        return None
    now = utcnow()
    row = await runner.first(
        _INSERT_NEXT_VERSION,
        {
            "device_id": device_id,
            "algorithm": key.algorithm.value,
            "der": key.der,
            "fingerprint": key.fingerprint,
            "source": source,
            "created_by": actor,
            "created_at": now,
        },
    )
    assert row is not None
    key_id, version = row[0], row[1]
    keywatch.key_changed(runner, device_id)
    await runner.execute(_POINT, {"_device_id": device_id, "_key_id": key_id, "_now": now})
    await settle_candidate(runner, device_id, key.fingerprint, actor=actor, at=now)
    await record_now(
        runner,
        actor,
        action,
        device_id=device_id,
        product_id=product_id,
        before=current_fingerprint,
        after=key.fingerprint,
        request_id=request_id,
        detail={"version": version, "source": source, **(detail or {})},
        at=now,
    )
    return KeyVersion(key_id, version, now)


class KeyWrite(TypedDict):
    """``append_key_version``'s keywords, which ``set_device_key`` passes through."""

    source: str
    actor: str
    action: str
    request_id: str | None
    current_fingerprint: str | None
    detail: NotRequired[dict[str, object] | None]


async def set_device_key(
    session: AsyncSession, device: Device, key: LoadedKey, **write: Unpack[KeyWrite]
) -> KeyVersion | None:
    """``append_key_version`` in ``session``, for a ``device`` loaded in it."""
    await session.flush()  # a device created in this transaction must exist first
    new = await append_key_version(
        SessionRunner(session), device.id, device.product_id, NewKey.of(key), **write
    )
    if new is not None:
        set_committed_value(device, "current_key_id", new.id)
        set_committed_value(device, "updated_at", new.at)
        if device.key_health == KeyHealth.NO_KEY:
            set_committed_value(device, "key_health", KeyHealth.UNKNOWN.value)
    return new
