"""``POST /v1/device_claims`` and ``POST /v1/products/:p/device_claims``: claim codes.

Particle's shape: ``{"claim_code": "...", "device_ids": [...]}`` (the owner's devices). A user
gets a code for itself; the product form needs a customer token, or the product's token naming
the customer (``customer``). The code is handed to the device during setup; the device presents
it after its handshake and is claimed for the code's owner (``fermion.cloud.claimcodes``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.auth import CallerDep, StoreDep, request_id
from fermion.cloud.api.errors import ApiError, bad_request
from fermion.cloud.api.fields import body_doc, body_fields, text_field
from fermion.cloud.api.product_access import load_product
from fermion.cloud.claimcodes import issue
from fermion.cloud.domain.permissions import Action, Principal
from fermion.cloud.store.models import Customer, Device, OwnerKind

router = APIRouter(tags=["devices"])

_FORM = body_doc(
    {
        "type": "object",
        "properties": {
            "iccid": {"type": "string"},
            "imei": {"type": "string"},
            "customer": {"type": "string", "description": "product token only"},
        },
    }
)


async def _owned(session: AsyncSession, condition: Any) -> list[str]:
    return list(await session.scalars(select(Device.id).where(condition).order_by(Device.id)))


@router.post(
    "/v1/device_claims",
    summary="A claim code for the caller (single use, expires in an hour)",
    openapi_extra=_FORM,
)
async def create_claim_code(request: Request, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    await body_fields(request)  # iccid/imei: accepted, Fermion has no cellular devices
    async with store.write() as session:
        if caller.kind is OwnerKind.USER:
            code = await issue(
                session, actor=caller.label, user_id=caller.user_id, request_id=request_id(request)
            )
            owned = await _owned(session, Device.owner_user_id == caller.user_id)
        elif caller.kind is OwnerKind.CUSTOMER:
            code = await issue(
                session,
                actor=caller.label,
                customer_id=caller.customer_id,
                product_id=caller.product_id,
                request_id=request_id(request),
            )
            owned = await _owned(session, Device.owner_customer_id == caller.customer_id)
        else:
            raise ApiError(
                403,
                "a product token has no devices of its own; ask for a customer's code with "
                "POST /v1/products/:p/device_claims customer=<email>",
            )
    return {"claim_code": code, "device_ids": owned}


@router.post(
    "/v1/products/{product}/device_claims",
    summary="A claim code for a customer of the product (customer token, or product token)",
    openapi_extra=_FORM,
)
async def create_product_claim_code(
    product: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    named = text_field(fields, "customer", max_len=254)
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.DEVICE_CLAIM)
        if st.actor is Principal.CUSTOMER:
            customer_id = caller.customer_id
        elif st.actor is Principal.PRODUCT_CLIENT:
            if named is None:
                raise bad_request(
                    "customer: is required with a product token (the customer's email)"
                )
            customer_id = await session.scalar(
                select(Customer.id).where(
                    Customer.product_id == st.product.id,
                    func.lower(Customer.email) == named.strip().lower(),
                )
            )
            if customer_id is None:
                raise bad_request(f"customer: no customer {named!r} in product {st.product.slug}")
        else:
            raise ApiError(
                403,
                f"a product's claim code is a customer's: use a customer token of product "
                f"{st.product.slug}, or the product's token with customer=<email>; a team member "
                "claims product devices by id (POST /v1/devices)",
            )
        code = await issue(
            session,
            actor=st.label,
            customer_id=customer_id,
            product_id=st.product.id,
            request_id=request_id(request),
        )
        owned = await _owned(session, Device.owner_customer_id == customer_id)
    return {"claim_code": code, "device_ids": owned}
