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

from fermion.cloud.api.auth import Caller, actor_in_product, lookup_token, token_from_request
from fermion.cloud.api.errors import ApiError, bad_request, forbidden, not_found, unauthorized
from fermion.cloud.api.fields import body_fields
from fermion.cloud.api.oauth import _client_credentials, _product_client
from fermion.cloud.domain.permissions import Action, Actor, Principal, check
from fermion.cloud.store.models import OAuthClient, Product, TeamMembership, User
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


def check_in_product(
    product: Product, ref: str, actor: Actor | None, action: Action, also: Actor | None = None
) -> None:
    """``permissions.check`` for a product route. Someone with no standing at all in the
    product gets the 404 an unknown product gets, so that a refusal does not tell outsiders
    which products exist; anyone with a standing gets the 403 naming the role needed."""
    if actor is None and also is None:
        raise not_found(f"product {ref!r} not found")
    check(actor, action, product.slug, also=also)


async def standing(
    session: AsyncSession, caller: Caller, ref: str, action: Action, *, also: Actor | None = None
) -> Standing:
    """The product ``ref`` names and the caller's standing in it, checked against ``action``."""
    product = await find_product(session, ref)
    actor = await actor_in_product(session, caller, product.id)
    check_in_product(product, ref, actor, action, also)
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
            raise not_found(f"product {ref!r} not found")  # as check_in_product
        return Standing(product, actor, caller.label, caller)
    client_id, secret = _client_credentials(request, await body_fields(request))
    if not client_id:
        raise unauthorized("The access token was not found.")
    client = await _product_client(session, client_id, secret)
    if client is None:
        raise ApiError(401, "client credentials are invalid", code="invalid_client")
    product = await find_product(session, ref)
    if client.product_id != product.id:
        raise not_found(f"product {ref!r} not found")  # no standing in it: as check_in_product
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
