"""What the product routes share: finding the product and the device a path names, the caller's
standing in that product, the product's OAuth client when it is the caller, and paging.

Permission decisions stay in ``fermion.cloud.domain.permissions.check``; this module only finds
who is asking and about what.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.access import check_standing
from fermion.cloud.api.auth import Caller, actor_in_product, lookup_token, token_from_request
from fermion.cloud.api.client_auth import client_credentials, product_client
from fermion.cloud.api.errors import ApiError, bad_request, forbidden, not_found, unauthorized
from fermion.cloud.api.fields import body_fields
from fermion.cloud.domain.permissions import Action, Actor, Principal
from fermion.cloud.store.models import Device, OAuthClient, OwnerKind, Product, TeamMembership, User
from fermion.cloud.store.queries import DeviceRow, device_row, product_by_id_or_slug
from fermion.ids import parse_device_id

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 1000


@dataclass(frozen=True)
class Standing:
    """Who is acting in a product: a token's owner, or a product client by its credentials."""

    product: Product
    actor: Actor | None
    label: str  # for the audit trail
    caller: Caller | None = None
    client: OAuthClient | None = None  # set when the product client authenticated itself


async def find_product(session: AsyncSession, ref: str) -> Product:
    product = await product_by_id_or_slug(session, ref)
    if product is None:
        raise not_found(f"product {ref!r} not found")
    return product


async def load_product(
    session: AsyncSession, caller: Caller, ref: str, action: Action, *, also: Actor | None = None
) -> Standing:
    """The product ``ref`` names and the caller's standing in it, checked against ``action``."""
    product = await find_product(session, ref)
    actor = await actor_in_product(session, caller, product.id)
    check_standing(actor, also, action, product.slug, f"product {ref!r} not found")
    return Standing(product, actor, caller.label, caller=caller)


async def token_or_client(request: Request, session: AsyncSession, ref: str) -> Standing:
    """A request that carries a token, or (customer creation) the product client's own
    credentials by HTTP Basic or ``client_id``/``client_secret`` in the body."""
    token = await token_from_request(request)
    if token:
        caller = await lookup_token(session, token)
        if caller is None:
            raise unauthorized()
        request.state.caller = caller
        product = await find_product(session, ref)
        actor = await actor_in_product(session, caller, product.id)
        if actor is None:
            raise not_found(f"product {ref!r} not found")  # as check_standing
        return Standing(product, actor, caller.label, caller)
    client_id, secret = client_credentials(request, await body_fields(request))
    if not client_id:
        raise unauthorized("The access token was not found.")
    client = await product_client(session, client_id, secret)
    if client is None:
        raise ApiError(401, "client credentials are invalid", code="invalid_client")
    product = await find_product(session, ref)
    if client.product_id != product.id:
        raise not_found(f"product {ref!r} not found")  # no standing in it: as check_standing
    label = f"client:{client.client_id}@product:{product.id}"
    return Standing(product, Principal.PRODUCT_CLIENT, label, client=client)


async def product_device(
    session: AsyncSession, st: Standing, raw_id: str, *, for_update: bool = False
) -> DeviceRow:
    """The device ``raw_id`` in ``st.product``; a customer only ever finds its own devices."""
    device_id = parse_device_id(raw_id)
    row = await device_row(session, device_id, for_update=for_update) if device_id else None
    if row is None or row.device.product_id != st.product.id:
        raise not_found(f"device {raw_id!r} not found in product {st.product.slug}")
    if st.actor is Principal.CUSTOMER and (
        st.caller is None or row.device.owner_customer_id != st.caller.customer_id
    ):
        raise forbidden(f"device {device_id} is not one of this customer's devices")
    return row


async def load_product_device(
    session: AsyncSession,
    caller: Caller,
    product: str,
    device_id: str,
    action: Action,
    *,
    for_update: bool = False,
) -> tuple[Standing, DeviceRow]:
    """The caller's standing toward one product device, checked against ``action``.

    The permission is decided before the device is looked up for anyone with no standing, so
    an outsider learns nothing about which devices exist; a user off the team who owns the
    device acts as its owner.
    """
    found = await find_product(session, product)
    actor = await actor_in_product(session, caller, found.id)
    also = None
    wanted = parse_device_id(device_id)
    if actor is None and caller.kind is OwnerKind.USER and wanted is not None:
        owner = await session.scalar(
            select(Device.owner_user_id).where(Device.id == wanted, Device.product_id == found.id)
        )
        if owner is not None and owner == caller.user_id:
            also = Principal.DEVICE_OWNER
    check_standing(actor, also, action, found.slug, f"product {product!r} not found")
    st = Standing(found, actor, caller.label, caller=caller)
    return st, await product_device(session, st, device_id, for_update=for_update)


def paging(page: int | None, per_page: int | None) -> tuple[int, int]:
    page = 1 if page is None else page
    per_page = DEFAULT_PER_PAGE if per_page is None else per_page
    if page < 1:
        raise bad_request("page: must be 1 or more")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise bad_request(f"perPage: must be from 1 to {MAX_PER_PAGE}")
    return page, per_page


def total_pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def product_owner_email(session: AsyncSession, product_id: int) -> str | None:
    return await session.scalar(
        select(User.email)
        .join(TeamMembership, TeamMembership.user_id == User.id)
        .where(TeamMembership.product_id == product_id, TeamMembership.role == "owner")
    )
