"""A device changing hands: the one place its owner is replaced.

History belongs to the owner it happened under. When a device's owner changes, its
``owner_since`` moves to the instant of the change (the audit query shows a non-team caller only
what happened from then on) and its notes, written by or for the previous owner, are cleared.
Callers record the change's audit event with ``at=`` the returned instant and ``detail`` updated
with the returned dictionary, so the clearing is audited in the same event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fermion.cloud.store.models import Device, utcnow


def change_owner(
    device: Device,
    *,
    user_id: int | None = None,
    customer_id: int | None = None,
    now: datetime | None = None,
) -> tuple[datetime, dict[str, Any]]:
    """Give ``device`` to a user, a customer, or (both None) nobody; (the instant, audit detail).

    Setting the owner it already has changes nothing of its history.
    """
    now = now or utcnow()
    detail: dict[str, Any] = {}
    if device.owner_user_id == user_id and device.owner_customer_id == customer_id:
        return now, detail
    device.owner_user_id = user_id
    device.owner_customer_id = customer_id
    device.owner_since = now
    device.updated_at = now
    if clear_notes(device):
        detail["notes"] = "cleared"
    return now, detail


def clear_notes(device: Device) -> bool:
    """Clear the notes of a device leaving its owner or product; whether there were any."""
    if not device.notes:
        return False
    device.notes = None
    return True
