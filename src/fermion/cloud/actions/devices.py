"""A device's owner and details: claim, unclaim, rename or annotate, take out of its product.

Who the owner becomes is ``fermion.cloud.ownership.change_owner`` (history belongs to the owner
it happened under); these functions add the audit event, the same one whichever route asks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import By
from fermion.cloud.ownership import change_owner, clear_notes
from fermion.cloud.store.models import Device, utcnow
from fermion.cloud.store.queries import DeviceRow


def owner_label(row: DeviceRow) -> str | None:
    """``customer:<email>`` or ``user:<email>``, as the audit trail names a device's owner."""
    if row.device.owner_customer_id is not None:
        return f"customer:{row.customer_email}"
    if row.device.owner_user_id is not None:
        return f"user:{row.owner_email}"
    return None


def claim(
    session: AsyncSession,
    device: Device,
    by: By,
    *,
    owner: str,
    user_id: int | None = None,
    customer_id: int | None = None,
    at: datetime | None = None,
    **detail: Any,
) -> None:
    """Give a device nobody owns to a user or a customer; ``owner`` names them as the audit
    trail does (``user:<email>``, ``customer:<email>``); ``detail``: how (a claim code...)."""
    now, released = change_owner(device, user_id=user_id, customer_id=customer_id, now=at)
    by.record(
        session,
        "device.claim",
        device_id=device.id,
        product_id=device.product_id,
        at=now,
        detail={"owner": owner, **detail, **released},
    )


def unclaim(
    session: AsyncSession,
    row: DeviceRow,
    by: By,
    *,
    reason: str | None = None,
    customer_only: bool = False,
) -> bool:
    """Release the device from its owner (``customer_only``: from its customer, a claiming
    user keeps it); whether anything changed."""
    device = row.device
    owner = owner_label(row)
    if owner is None:
        return False
    now, released = change_owner(device, user_id=device.owner_user_id if customer_only else None)
    by.record(
        session,
        "device.unclaim",
        device_id=device.id,
        product_id=device.product_id,
        at=now,
        detail={"owner": owner, **({"reason": reason} if reason else {}), **released},
    )
    return True


def edit(
    session: AsyncSession, device: Device, by: By, *, name: str | None, notes: str | None
) -> None:
    """Set the device's name and/or notes (those not None); audit what changed."""
    changes: dict[str, Any] = {}
    if name is not None and name != device.name:
        changes["name"] = [device.name, name]
        device.name = name
    if notes is not None and notes != device.notes:
        changes["notes"] = "changed"  # notes may be private: the trail says only that they did
        device.notes = notes
    if changes:
        device.updated_at = utcnow()
        by.record(
            session,
            "device.edit",
            device_id=device.id,
            product_id=device.product_id,
            at=device.updated_at,
            detail=changes,
        )


def remove_from_product(session: AsyncSession, row: DeviceRow, by: By) -> None:
    """Take the device out of its product; a customer owner goes with it (a customer exists
    only inside its product) and the product's notes stay with the product."""
    device = row.device
    product_id = device.product_id
    if device.owner_customer_id is not None:
        unclaim(session, row, by, reason="removed", customer_only=True)
    detail: dict[str, Any] = {}
    if clear_notes(device):
        detail["notes"] = "cleared"
    device.product_id = None
    device.updated_at = utcnow()
    by.record(
        session,
        "device.remove",
        device_id=device.id,
        product_id=product_id,
        at=device.updated_at,
        detail=detail or None,
    )
