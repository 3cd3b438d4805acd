"""``GET /v1/audit`` (Fermion): the audit trail, filtered, limited to what the caller may see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import and_, or_, select

from fermion.cloud.api.access import load_device
from fermion.cloud.api.auth import Caller, CallerDep, StoreDep, actor_in_product
from fermion.cloud.api.errors import not_found
from fermion.cloud.api.views import audit_json
from fermion.cloud.domain.permissions import PERMISSIONS, Action, Role, check
from fermion.cloud.store.models import AuditEvent, Device, OwnerKind, TeamMembership
from fermion.cloud.store.queries import product_by_id_or_slug

router = APIRouter(tags=["fermion"])

_AUDIT_ROLES = [r.value for r in PERMISSIONS[Action.AUDIT_VIEW] if isinstance(r, Role)]


@router.get(
    "/v1/audit",
    summary="Audit events, newest first",
    description=(
        "Without filters: events the caller caused, events of products where the caller may "
        "view the audit log, and events of devices the caller owns since they got them. With "
        "`device_id`: a product device's events in its product (for its team), a device in no "
        "product's events since its owner got it."
    ),
)
async def audit_log(
    caller: CallerDep,
    store: StoreDep,
    device_id: str | None = Query(None, max_length=24),
    product_id: str | None = Query(None, max_length=100, description="id or slug"),
    actor: str | None = Query(None, max_length=300, description="e.g. user:a@b.c"),
    action: str | None = Query(None, max_length=64, description="e.g. key.upload"),
    since: datetime | None = Query(None, description="ISO 8601, inclusive"),
    until: datetime | None = Query(None, description="ISO 8601, exclusive"),
    before_id: int | None = Query(None, ge=1, le=2**31 - 1, description="page: ids below this"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    async with store.read() as session:
        stmt = select(AuditEvent)
        if product_id is not None:
            product = await product_by_id_or_slug(session, product_id)
            if product is None:
                raise not_found(f"product_id: product {product_id} not found")
            # An outsider gets the unknown product's 404: a refusal must not tell which exist.
            member = await actor_in_product(session, caller, product.id)
            if member is None:
                raise not_found(f"product_id: product {product_id} not found")
            check(member, Action.AUDIT_VIEW, product.id)
            stmt = stmt.where(AuditEvent.product_id == product.id)
        if device_id is not None:
            row = await load_device(session, caller, device_id, Action.AUDIT_VIEW)
            stmt = stmt.where(device_trail(row.device, caller))
        if product_id is None and device_id is None:
            stmt = stmt.where(_visible(caller))
        if actor is not None:
            stmt = stmt.where(AuditEvent.actor == actor)
        if action is not None:
            stmt = stmt.where(AuditEvent.action == action)
        if since is not None:
            stmt = stmt.where(AuditEvent.at >= _utc(since))
        if until is not None:
            stmt = stmt.where(AuditEvent.at < _utc(until))
        if before_id is not None:
            stmt = stmt.where(AuditEvent.id < before_id)
        events = await session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit))
        return {"ok": True, "events": [audit_json(e) for e in events]}


def _utc(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _visible(caller: Any) -> Any:
    if caller.kind is OwnerKind.CLIENT:
        return or_(AuditEvent.product_id == caller.product_id, AuditEvent.actor == caller.label)
    if caller.kind is OwnerKind.CUSTOMER:
        return AuditEvent.actor == caller.label
    products = select(TeamMembership.product_id).where(
        TeamMembership.user_id == caller.user_id, TeamMembership.role.in_(_AUDIT_ROLES)
    )
    owned_since_then = (
        select(Device.id)
        .where(
            Device.id == AuditEvent.device_id,
            Device.owner_user_id == caller.user_id,
            AuditEvent.at >= Device.owner_since,
        )
        .exists()
    )
    return or_(
        AuditEvent.actor == caller.label,
        AuditEvent.product_id.in_(products),
        owned_since_then,
    )


def device_trail(device: Device, caller: Caller) -> Any:
    """The condition for ``device``'s events that ``caller`` (who passed AUDIT_VIEW on it) may
    read: its current holder's era, and what the caller did themselves, whoever holds it now."""
    return and_(
        AuditEvent.device_id == device.id,
        or_(_era(device), AuditEvent.actor == caller.label),
    )


def _era(device: Device) -> Any:
    """The part of a device's trail its current holder may read: history belongs to the owner
    it happened under. A product device's trail, for its team (only they pass AUDIT_VIEW on
    it), is what happened in that product; a device in no product, for its owner (the only
    one with a say), is what happened since they got it."""
    if device.product_id is not None:
        return AuditEvent.product_id == device.product_id
    return AuditEvent.at >= device.owner_since
