"""Reads the API needs often, each one query (no N+1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store.direct import Runner
from fermion.cloud.store.models import (
    Customer,
    Device,
    DeviceKey,
    Product,
    TeamMembership,
    User,
)


@dataclass(frozen=True)
class DeviceRow:
    device: Device
    owner_email: str | None  # the user or customer who claimed it
    customer_email: str | None
    key_fingerprint: str | None
    key_algorithm: str | None


_DEVICE_ROWS = (
    select(Device, User.email, Customer.email, DeviceKey.fingerprint, DeviceKey.algorithm)
    .outerjoin(User, User.id == Device.owner_user_id)
    .outerjoin(Customer, Customer.id == Device.owner_customer_id)
    .outerjoin(DeviceKey, DeviceKey.id == Device.current_key_id)
)


def device_rows() -> Select[Any]:
    """Devices with owner emails and current key (statements are immutable: built once)."""
    return _DEVICE_ROWS


def _row(r: Any) -> DeviceRow:
    device, user_email, customer_email, key_fp, key_alg = r
    return DeviceRow(device, user_email or customer_email, customer_email, key_fp, key_alg)


_BY_ID = _DEVICE_ROWS.where(Device.id == bindparam("device_id"))
_BY_ID_FOR_UPDATE = _BY_ID.with_for_update(of=Device)


async def device_row(
    session: AsyncSession, device_id: str, *, for_update: bool = False
) -> DeviceRow | None:
    stmt = _BY_ID_FOR_UPDATE if for_update else _BY_ID
    r = (await session.execute(stmt, {"device_id": device_id})).first()
    return _row(r) if r is not None else None


_devices = Device.__table__
_members = TeamMembership.__table__
_DEVICE_COLUMNS = tuple(c.key for c in _devices.c)
# The team role of the user bound as ``user_id`` in the device's product (None: not a member).
CALLERS_ROLE = (
    select(_members.c.role)
    .where(
        _members.c.product_id == _devices.c.product_id,
        _members.c.user_id == bindparam("user_id"),
    )
    .scalar_subquery()
)
# ``device_row`` in one Core statement, plus a user's team role in the device's product.
_DEVICE_AND_ROLE = (
    select(
        *_devices.c,
        User.email,
        Customer.email,
        DeviceKey.fingerprint,
        DeviceKey.algorithm,
        CALLERS_ROLE,
    )
    .select_from(
        _devices.outerjoin(User, User.id == _devices.c.owner_user_id)
        .outerjoin(Customer, Customer.id == _devices.c.owner_customer_id)
        .outerjoin(DeviceKey, DeviceKey.id == _devices.c.current_key_id)
    )
    .where(_devices.c.id == bindparam("device_id"))
)


async def device_and_role(
    runner: Runner, device_id: str, user_id: int | None
) -> tuple[DeviceRow, str | None] | None:
    """``device_row`` (a detached ``Device``) and user ``user_id``'s role in its product, in
    one statement on a ``Runner`` (``Store.direct_read``)."""
    r = await runner.first(_DEVICE_AND_ROLE, {"device_id": device_id, "user_id": user_id})
    if r is None:
        return None
    n = len(_DEVICE_COLUMNS)
    device = Device(**dict(zip(_DEVICE_COLUMNS, r[:n], strict=True)))
    return _row((device, *r[n : n + 4])), r[n + 4]


async def device_list(session: AsyncSession, *conditions: Any) -> list[DeviceRow]:
    stmt = (
        device_rows()
        .where(*conditions)
        .order_by(Device.last_handshake_at.desc().nulls_last(), Device.id)
    )
    return [_row(r) for r in (await session.execute(stmt)).all()]


def _as_product_id(text: str) -> int | None:
    plain = text.isascii() and text.isdigit()  # str.isdigit() alone admits '²'
    return int(text) if plain and len(text) <= 9 else None  # beyond int4: not an id


async def product_by_id_or_slug(session: AsyncSession, ref: str | int) -> Product | None:
    """The product a reference names: its id when it is one, else its slug."""
    text = str(ref).strip()
    product_id = _as_product_id(text)
    if product_id is not None:
        found = await session.get(Product, product_id)
        if found is not None:
            return found
    return await session.scalar(select(Product).where(Product.slug == text))


_products = Product.__table__
_PRODUCT_BY_ID = select(_products.c.id, _products.c.platform_id).where(
    _products.c.id == bindparam("id")
)
_PRODUCT_BY_SLUG = select(_products.c.id, _products.c.platform_id).where(
    _products.c.slug == bindparam("slug")
)


async def product_ids_by_ref(runner: Runner, ref: str | int) -> tuple[int, int] | None:
    """``product_by_id_or_slug`` on a ``Runner``: (id, platform_id) of the product."""
    text = str(ref).strip()
    product_id = _as_product_id(text)
    if product_id is not None:
        row = await runner.first(_PRODUCT_BY_ID, {"id": product_id})
        if row is not None:
            return row[0], row[1]
    row = await runner.first(_PRODUCT_BY_SLUG, {"slug": text})
    return (row[0], row[1]) if row is not None else None
