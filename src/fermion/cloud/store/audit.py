"""Writing the audit trail. Callers pass the session of the change so both commit together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store.direct import Runner
from fermion.cloud.store.models import AuditEvent, utcnow

_table = AuditEvent.__table__
# Built once, every column bound (so it runs on the driver too: no Python-side defaults).
_INSERT = insert(_table).values({c.name: bindparam(c.name) for c in _table.c if c.name != "id"})


def _values(
    actor: str,
    action: str,
    *,
    device_id: str | None = None,
    product_id: int | None = None,
    before: str | None = None,
    after: str | None = None,
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "at": at or utcnow(),
        "actor": actor,
        "action": action,
        "device_id": device_id,
        "product_id": product_id,
        "before_fingerprint": before,
        "after_fingerprint": after,
        "request_id": request_id,
        "detail": detail,
    }


def record(session: AsyncSession, actor: str, action: str, **fields: Any) -> AuditEvent:
    """Add an event to the ORM session (written at its next flush, in its transaction)."""
    event = AuditEvent(**_values(actor, action, **fields))
    session.add(event)
    return event


async def record_now(runner: Runner, actor: str, action: str, **fields: Any) -> None:
    """The same event, written at once with a prepared statement (no ORM unit of work).

    ``runner``: a ``Runner`` or an ``AsyncSession`` (both have ``execute(stmt, params)``).
    """
    await runner.execute(_INSERT, _values(actor, action, **fields))
