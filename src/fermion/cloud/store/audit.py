"""Writing the audit trail. Callers pass the session of the change so both commit together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store.models import AuditEvent, utcnow

# Built once: the key-upload path writes one of these per request.
_INSERT = insert(AuditEvent.__table__)


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
) -> dict[str, Any]:
    return {
        "at": utcnow(),
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
    """Add an event to the session (written at its next flush, in its transaction)."""
    event = AuditEvent(**_values(actor, action, **fields))
    session.add(event)
    return event


async def record_now(session: AsyncSession, actor: str, action: str, **fields: Any) -> None:
    """The same event, written at once with a prepared statement (no ORM unit of work)."""
    await session.execute(_INSERT, _values(actor, action, **fields))
