"""A product's customers: list, create (by a team token or the product client's credentials),
change password, delete (revoking the customer's tokens and releasing its devices).

A two-legged ("shadow") customer is created with ``no_password=true`` and only ever gets tokens
through ``POST /oauth/token`` with ``grant_type=client_credentials`` and
``scope=customer=<email>``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from fermion.cloud.actions import By, customers
from fermion.cloud.api.auth import CallerDep, StoreDep, action_by, request_id
from fermion.cloud.api.errors import bad_request
from fermion.cloud.api.fields import body_doc, body_fields, bool_field, text_field
from fermion.cloud.api.product_access import (
    load_product,
    paging,
    token_or_client,
    total_pages,
)
from fermion.cloud.credentials import hash_password_async
from fermion.cloud.domain.permissions import Action, check
from fermion.cloud.store.models import Customer, Device, OwnerKind
from fermion.cloud.tokens import TokenOwner, mint

router = APIRouter(tags=["customers"])

_CUSTOMER_BODY = {
    "type": "object",
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "maxLength": 1000},
        "no_password": {"type": "boolean"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    },
}
_PASSWORD_BODY = {
    "type": "object",
    "required": ["password"],
    "properties": {"password": {"type": "string", "minLength": 1, "maxLength": 1000}},
}


def _email(raw: str) -> str:
    email = raw.strip().lower()
    if not email or any(c.isspace() or not c.isprintable() for c in email):
        raise bad_request("email: must be a non-empty identifier without spaces")
    return email


@router.get("/v1/products/{product}/customers", summary="The product's customers, paged")
async def list_customers(
    product: str,
    caller: CallerDep,
    store: StoreDep,
    page: int | None = Query(None, ge=1, le=1_000_000),
    per_page_camel: int | None = Query(None, alias="perPage", ge=1, le=1000),
    per_page_snake: int | None = Query(None, alias="per_page", ge=1, le=1000),
) -> dict[str, Any]:
    page, per_page = paging(page, per_page_camel or per_page_snake)
    async with store.read() as session:
        st = await load_product(session, caller, product, Action.CUSTOMER_VIEW)
        total = await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.product_id == st.product.id)
        )
        customers = (
            await session.scalars(
                select(Customer)
                .where(Customer.product_id == st.product.id)
                .order_by(Customer.id)
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
        ).all()
        ids = [c.id for c in customers]
        devices = (
            (
                await session.execute(
                    select(
                        Device.id,
                        Device.owner_customer_id,
                        Device.last_ip_address,
                        Device.online,
                    )
                    .where(Device.owner_customer_id.in_(ids), Device.product_id == st.product.id)
                    .order_by(Device.id)
                )
            ).all()
            if ids
            else []
        )
    owned: dict[int, list[str]] = {}
    for device_id, owner, _ip, _online in devices:
        owned.setdefault(owner, []).append(device_id)
    return {
        "customers": [
            {
                "id": str(c.id),
                "username": c.email,
                "devices": owned.get(c.id, []),
                "no_password": c.password_hash is None,
            }
            for c in customers
        ],
        "devices": [
            {
                "id": device_id,
                "product_id": st.product.id,
                "last_ip_address": ip,
                "firmware_version": None,
                "online": online,
            }
            for device_id, _owner, ip, online in devices
        ],
        "meta": {"total_pages": total_pages(total or 0, per_page), "total": total or 0},
    }


@router.post(
    "/v1/products/{product}/customers",
    status_code=201,
    summary="Create a customer and return a token for it",
    description=(
        "Authenticate with a team member's token (Developer or above), a product token, or the "
        "product OAuth client's own credentials (HTTP Basic, or `client_id` and `client_secret` "
        "in the body). `no_password=true` makes a two-legged (shadow) customer."
    ),
    openapi_extra=body_doc(_CUSTOMER_BODY),
)
async def create_customer(product: str, request: Request, store: StoreDep) -> JSONResponse:
    fields = await body_fields(request)
    raw_email = text_field(fields, "email", required=True, max_len=254)
    assert raw_email is not None
    email = _email(raw_email)
    password = text_field(fields, "password", max_len=1000)
    no_password = bool_field(fields, "no_password")
    if password is None and not no_password:
        raise bad_request("password: is required (or no_password=true for a two-legged customer)")
    async with store.read() as session:
        st = await token_or_client(request, session, product)
        check(st.actor, Action.CUSTOMER_MANAGE, st.product.slug)
    # argon2 is slow on purpose: hash before taking the write lock.
    password_hash = None
    if password is not None and not no_password:
        password_hash = await hash_password_async(password)
    rid = request_id(request)
    async with store.write() as session:
        customer = await customers.create_customer(
            session, st.product, email, password_hash, By(st.label, rid)
        )
        client = st.client
        if client is None and st.caller is not None and st.caller.kind is OwnerKind.CLIENT:
            client_pk, client_name = st.caller.oauth_client_id, st.caller.client_name
        elif client is not None:
            client_pk, client_name = client.id, client.client_id
        else:
            client_pk, client_name = None, "fermion-team"
        minted = await mint(
            session,
            TokenOwner(
                OwnerKind.CUSTOMER,
                customer_id=customer.id,
                oauth_client_id=client_pk,
                product_id=st.product.id,
            ),
            client_name=client_name,
            expires_in=None,
            actor=st.label,
            request_id=rid,
        )
    return JSONResponse(minted.response(), status_code=201, headers={"Cache-Control": "no-store"})


@router.put(
    "/v1/products/{product}/customers/{email}",
    summary="Set a customer's password",
    openapi_extra=body_doc(_PASSWORD_BODY),
)
async def update_customer(
    product: str, email: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    password = text_field(fields, "password", required=True, max_len=1000)
    assert password is not None
    async with store.read() as session:
        st = await load_product(session, caller, product, Action.CUSTOMER_MANAGE)
        await customers.find_customer(session, st.product, email)
    password_hash = await hash_password_async(password)
    async with store.write() as session:
        customer = await customers.find_customer(session, st.product, email)
        customers.set_password(session, st.product, customer, password_hash, action_by(st, request))
    return {"ok": True}


@router.delete(
    "/v1/products/{product}/customers/{email}",
    summary="Delete a customer: revokes its tokens and unclaims its devices",
)
async def delete_customer(
    product: str, email: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.CUSTOMER_MANAGE)
        customer = await customers.find_customer(session, st.product, email)
        await customers.delete_customer(session, st.product, customer, action_by(st, request))
    return {"ok": True}
