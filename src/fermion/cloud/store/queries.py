"""Reads the API needs often, each one query (no N+1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, case, or_, select
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


_devices = Device.__table__
_members = TeamMembership.__table__
_DEVICE_COLUMNS = tuple(c.key for c in _devices.c)
# Beside the device: the emails of the user or customer who claimed it, and its current key.
_OWNERS_AND_KEY = (User.email, Customer.email, DeviceKey.fingerprint, DeviceKey.algorithm)
_DEVICE_JOINS = (
    _devices.outerjoin(User, User.id == _devices.c.owner_user_id)
    .outerjoin(Customer, Customer.id == _devices.c.owner_customer_id)
    .outerjoin(DeviceKey, DeviceKey.id == _devices.c.current_key_id)
)
# The team role of the user bound as ``user_id`` in the device's product (None: not a member).
CALLERS_ROLE = (
    select(_members.c.role)
    .where(
        _members.c.product_id == _devices.c.product_id,
        _members.c.user_id == bindparam("user_id"),
    )
    .scalar_subquery()
)
# The one read of a device by id, a Core statement (so it runs on any ``Runner``); ``device_row``
# runs the same statement through the ORM.
_DEVICE_AND_ROLE = (
    select(*_devices.c, *_OWNERS_AND_KEY, CALLERS_ROLE)
    .select_from(_DEVICE_JOINS)
    .where(_devices.c.id == bindparam("device_id"))
)
_ENTITIES = (Device, *_OWNERS_AND_KEY)
_DEVICE_ROWS = select(*_ENTITIES).select_from(_DEVICE_JOINS)
_BY_ID = select(*_ENTITIES).from_statement(_DEVICE_AND_ROLE)
_BY_ID_FOR_UPDATE = select(*_ENTITIES).from_statement(_DEVICE_AND_ROLE.with_for_update(of=_devices))


def device_rows() -> Select[Any]:
    """Devices with owner emails and current key (statements are immutable: built once); rows
    for ``as_device_row``."""
    return _DEVICE_ROWS


def as_device_row(r: Any) -> DeviceRow:
    """A ``DeviceRow`` from a row of ``device_rows()``: (Device, user email, customer email,
    key fingerprint, key algorithm)."""
    device, user_email, customer_email, key_fp, key_alg = r
    return DeviceRow(device, user_email or customer_email, customer_email, key_fp, key_alg)


async def device_row(
    session: AsyncSession, device_id: str, *, for_update: bool = False
) -> DeviceRow | None:
    """The device (in ``session``, locked for update if asked) with its owners and key."""
    stmt = _BY_ID_FOR_UPDATE if for_update else _BY_ID
    r = (await session.execute(stmt, {"device_id": device_id, "user_id": None})).first()
    return as_device_row(r) if r is not None else None


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
    return as_device_row((device, *r[n : n + 4])), r[n + 4]


async def device_list(session: AsyncSession, *conditions: Any) -> list[DeviceRow]:
    stmt = (
        device_rows()
        .where(*conditions)
        .order_by(Device.last_handshake_at.desc().nulls_last(), Device.id)
    )
    return [as_device_row(r) for r in (await session.execute(stmt)).all()]


def _as_product_id(text: str) -> int | None:
    plain = text.isascii() and text.isdigit()  # str.isdigit() alone admits '²'
    return int(text) if plain and len(text) <= 9 else None  # beyond int4: not an id


_products = Product.__table__
# The product a reference names: its id when it is one, else its slug (an id match first: a
# slug may look like another product's id). One Core statement, run through the ORM by
# ``product_by_id_or_slug`` and on a ``Runner`` by ``product_ids_by_ref``.
_PRODUCT_BY_REF = (
    select(_products)
    .where(
        or_(_products.c.id == bindparam("id"), _products.c.slug == bindparam("slug")),
    )
    .order_by(case((_products.c.id == bindparam("id"), 0), else_=1))
)
_PRODUCT_ENTITY = select(Product).from_statement(_PRODUCT_BY_REF)
_PRODUCT_ID = _products.c.keys().index("id")
_PRODUCT_PLATFORM = _products.c.keys().index("platform_id")


def _ref_params(ref: str | int) -> dict[str, Any]:
    text = str(ref).strip()
    return {"id": _as_product_id(text), "slug": text}


async def product_by_id_or_slug(session: AsyncSession, ref: str | int) -> Product | None:
    """The product a reference names: its id when it is one, else its slug."""
    return (await session.execute(_PRODUCT_ENTITY, _ref_params(ref))).scalars().first()


async def product_ids_by_ref(runner: Runner, ref: str | int) -> tuple[int, int] | None:
    """``product_by_id_or_slug`` on a ``Runner``: (id, platform_id) of the product."""
    row = await runner.first(_PRODUCT_BY_REF, _ref_params(ref))
    return (row[_PRODUCT_ID], row[_PRODUCT_PLATFORM]) if row is not None else None
