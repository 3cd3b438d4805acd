"""Writing the audit trail. Callers pass the session of the change so both commit together."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store.models import AuditEvent


def record(
    session: AsyncSession,
    actor: str,
    action: str,
    *,
    device_id: str | None = None,
    product_id: int | None = None,
    before: str | None = None,
    after: str | None = None,
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor=actor,
        action=action,
        device_id=device_id,
        product_id=product_id,
        before_fingerprint=before,
        after_fingerprint=after,
        request_id=request_id,
        detail=detail,
    )
    session.add(event)
    return event
