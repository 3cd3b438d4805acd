"""Who may do what: the caller's standing toward a device, and ``check_standing``, the one check
every device and product route goes through (it runs the permission table,
``fermion.cloud.domain.permissions.check``).

Devices are loaded here (``load_device``); products and product devices in ``product_access``
(``load_product``, ``load_product_device``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.auth import Caller, actor_from_role, actor_in_product
from fermion.cloud.api.errors import bad_request, not_found
from fermion.cloud.domain.permissions import Action, Actor, Principal, Role, check
from fermion.cloud.store.models import Device
from fermion.cloud.store.queries import DeviceRow, device_row
from fermion.ids import not_a_device_id, parse_device_id


def device_id_param(value: str, field: str = "id") -> str:
    """A device id from a request, or the 400 naming ``field``."""
    device_id = parse_device_id(value)
    if device_id is None:
        raise bad_request(not_a_device_id(field, value))
    return device_id


def check_standing(
    actor: Actor | None, also: Actor | None, action: Action, scope: object, unseen: str
) -> None:
    """``permissions.check`` for a route about one object. Someone with no standing toward it
    at all gets the 404 an unknown object gets (``unseen``), so that a refusal does not tell
    outsiders what exists; anyone with a standing gets the 403 naming the role needed."""
    if actor is None and also is None:
        raise not_found(unseen)
    check(actor, action, scope, also=also)


async def device_standing(
    session: AsyncSession, caller: Caller, device: Device
) -> tuple[Actor | None, Actor | None]:
    """(role or principal in the device's product, ownership standing) for ``check``."""
    actor = None
    if device.product_id is not None:
        actor = await actor_in_product(session, caller, device.product_id)
    return device_actors(
        caller, actor, device.product_id, device.owner_user_id, device.owner_customer_id
    )


def device_actors(
    caller: Caller,
    actor: Actor | None,
    product_id: int | None,
    owner_user_id: int | None,
    owner_customer_id: int | None,
) -> tuple[Actor | None, Actor | None]:
    """``device_standing`` from the device's columns and the caller's ``actor_in_product`` there."""
    owns = caller.is_user and owner_user_id == caller.user_id
    if product_id is None:
        # Outside any product the owner is the only one with a say.
        return (Role.OWNER if owns else None), None
    if actor is Principal.CUSTOMER and owner_customer_id != caller.customer_id:
        actor = None  # customers see only their own devices
    return actor, (Principal.DEVICE_OWNER if owns else None)


async def authorize(session: AsyncSession, caller: Caller, device: Device, action: Action) -> None:
    """Raise 404 when the caller has no standing at all (hides the device), 403 when the
    standing does not allow ``action`` (the message names the role needed)."""
    actor, also = await device_standing(session, caller, device)
    check_standing(actor, also, action, device.product_id, f"device {device.id} not found")


def authorize_with_role(caller: Caller, device: Device, role: str | None, action: Action) -> None:
    """``authorize``, given the caller's team role in the device's product (users)."""
    in_product = (
        actor_from_role(caller, device.product_id, role) if device.product_id is not None else None
    )
    actor, also = device_actors(
        caller, in_product, device.product_id, device.owner_user_id, device.owner_customer_id
    )
    check_standing(actor, also, action, device.product_id, f"device {device.id} not found")


async def load_device(
    session: AsyncSession,
    caller: Caller,
    device_id: str,
    action: Action,
    *,
    for_update: bool = False,
) -> DeviceRow:
    """The device ``device_id`` names, if the caller's standing allows ``action``."""
    row = await device_row(session, device_id_param(device_id), for_update=for_update)
    if row is None:
        raise not_found(f"device {device_id} not found")
    await authorize(session, caller, row.device, action)
    return row
