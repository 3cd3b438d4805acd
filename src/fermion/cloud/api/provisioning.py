"""``POST /v1/provisioning/:id``: upload a device's public key (particle-cli ``keys send``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.access import device_id_param, standing
from fermion.cloud.api.auth import Caller, CallerDep, StoreDep, actor_in_product, request_id
from fermion.cloud.api.errors import ApiError, bad_request, not_found
from fermion.cloud.api.fields import body_fields, text_field
from fermion.cloud.api.views import fp
from fermion.cloud.domain.keypolicy import (
    ALGORITHM_TRANSPORT,
    parse_device_public_key,
    require_fits_device,
)
from fermion.cloud.domain.permissions import Action, PermissionDenied, Principal, check
from fermion.cloud.domain.platforms import DEFAULT_TCP, DEFAULT_UDP
from fermion.cloud.keyops import KeyVersion, set_device_key
from fermion.cloud.store import Store
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import Device, KeyHealth, KeySource, OwnerKind
from fermion.cloud.store.queries import DeviceRow, device_row, product_by_id_or_slug
from fermion.keys import Algorithm, LoadedKey

router = APIRouter(tags=["keys"])

_FIELDS = {
    "type": "object",
    "required": ["publicKey"],
    "properties": {
        "deviceID": {"type": "string"},
        "publicKey": {"type": "string", "description": "PEM of the device's public key"},
        "filename": {"type": "string"},
        "order": {"type": "string"},
        "algorithm": {"type": "string", "enum": ["rsa", "ecc"]},
        "product_id": {"type": "string"},
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _FIELDS},
            "application/json": {"schema": _FIELDS},
        },
    }
}


def customer_device_refusal(device_id: str, customer: str | None, product_id: int) -> str:
    """Why /v1/provisioning will not touch a customer's device, and what to do instead."""
    return (
        f"device {device_id} is claimed by customer {customer} of product {product_id}; its "
        "key cannot be changed through /v1/provisioning while it is claimed. Particle's "
        "procedure: unclaim the device (DELETE /v1/devices/:id), send the key (keys send "
        "--product_id), get a customer token (POST /oauth/token grant_type=client_credentials "
        "scope=customer=<email> with a two-legged client), then claim the device back with it "
        "(POST /v1/devices id=...). Fermion does all of this in one atomic step that keeps the "
        f"claim: POST /v1/devices/{device_id}/keys/repair (Developer or above), or "
        "`fermion keys repair`."
    )


@router.post(
    "/v1/provisioning/{device_id}",
    summary="Upload a device public key",
    description=(
        "Stores the key as the device's new current key version (the old ones stay in its "
        "history), with an audit event, in one transaction. A never-seen device id is created: "
        "in the product when `product_id` is given and the caller may add devices to it, "
        "otherwise owned by the caller."
    ),
    openapi_extra=_BODY,
)
async def provision(
    device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    device_id = device_id_param(device_id, "deviceID")
    fields = await body_fields(request)
    given_id = text_field(fields, "deviceID", max_len=100)
    if given_id is not None and device_id_param(given_id, "deviceID") != device_id:
        raise bad_request(f"deviceID: {given_id!r} does not match the device id in the path")
    text = text_field(fields, "publicKey", required=True, max_len=16_384)
    assert text is not None
    key = parse_device_public_key(text, text_field(fields, "algorithm", max_len=20))
    product_ref = text_field(fields, "product_id", max_len=100)
    rid = request_id(request)
    for attempt in (1, 2):
        try:
            version = await _store_key(store, caller, device_id, key, product_ref, rid)
            break
        except IntegrityError:
            # Two first uploads for the same new device raced (PostgreSQL lets both see no
            # row); the loser's transaction rolled back whole, and a second try finds the
            # device the winner created and goes through the usual checks.
            if attempt == 2:
                raise
    return {
        "ok": True,
        "deviceID": device_id,
        "fingerprint": fp(key.fingerprint.hex),
        "key_version": version.version if version is not None else None,
        "changed": version is not None,
    }


async def _store_key(
    store: Store,
    caller: Caller,
    device_id: str,
    key: LoadedKey,
    product_ref: str | None,
    rid: str | None,
) -> KeyVersion | None:
    async with store.write() as session:
        row = await device_row(session, device_id, for_update=True)
        if row is None:
            device = await _create_device(session, caller, device_id, key, product_ref, rid)
            current = None
        else:
            await _may_upload(session, caller, row, product_ref)
            device = row.device
            current = row.key_fingerprint
            require_fits_device(key, device_id, device.transport, "publicKey")
        return await set_device_key(
            session,
            device,
            key,
            source=KeySource.PROVISIONING,
            actor=caller.label,
            action="key.upload",
            request_id=rid,
            current_fingerprint=current,
        )


async def _create_device(
    session: AsyncSession,
    caller: Caller,
    device_id: str,
    key: LoadedKey,
    product_ref: str | None,
    rid: str | None,
) -> Device:
    transport = ALGORITHM_TRANSPORT[key.algorithm]
    platform = DEFAULT_UDP if key.algorithm is Algorithm.EC else DEFAULT_TCP
    if product_ref is None and caller.kind is OwnerKind.CLIENT:
        product_ref = str(caller.product_id)  # a product token acts for its product
    if product_ref is not None:
        product = await product_by_id_or_slug(session, product_ref)
        if product is None:
            raise not_found(f"product_id: product {product_ref} not found")
        actor = await actor_in_product(session, caller, product.id)
        check(actor, Action.DEVICE_ADD, product.id)
        check(actor, Action.KEY_UPLOAD, product.id)
        device = Device(
            id=device_id,
            product_id=product.id,
            platform_id=product.platform_id,
            transport=transport,
            key_health=KeyHealth.UNKNOWN,
        )
    elif caller.kind is OwnerKind.USER:
        device = Device(
            id=device_id,
            owner_user_id=caller.user_id,
            platform_id=platform.id,
            transport=transport,
            key_health=KeyHealth.UNKNOWN,
        )
    else:
        raise PermissionDenied(
            "creating a device needs a user token or product_id; a customer token does not "
            "allow it",
            action=Action.DEVICE_ADD,
            actor=Principal.CUSTOMER,
        )
    session.add(device)
    await session.flush()
    record(
        session,
        caller.label,
        "device.create",
        device_id=device_id,
        product_id=device.product_id,
        request_id=rid,
        detail={"transport": transport, "via": "provisioning"},
    )
    return device


async def _may_upload(
    session: AsyncSession, caller: Caller, row: DeviceRow, product_ref: str | None
) -> None:
    device = row.device
    if product_ref is not None and product_ref.strip() != str(device.product_id):
        product = await product_by_id_or_slug(session, product_ref)
        if product is None:
            raise not_found(f"product_id: product {product_ref} not found")
        if device.product_id != product.id:
            where = f"product {device.product_id}" if device.product_id else "no product"
            raise bad_request(
                f"product_id: device {device.id} is in {where}, not product {product.id}"
            )
    actor, also = await standing(session, caller, device)
    if actor is None and also is None:
        raise ApiError(
            403,
            f"device {device.id}: That belongs to someone else; its key was not changed",
            errors=["That belongs to someone else."],
        )
    check(actor, Action.KEY_UPLOAD, device.product_id, also=also)
    if device.owner_customer_id is not None:
        assert device.product_id is not None
        raise ApiError(
            403,
            customer_device_refusal(device.id, row.customer_email, device.product_id),
            repair_url=f"/v1/devices/{device.id}/keys/repair",
        )
