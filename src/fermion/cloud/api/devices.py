"""``/v1/devices``: list, read, claim, unclaim, rename."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import devices
from fermion.cloud.api.access import authorize_with_role, device_id_param, load_device
from fermion.cloud.api.auth import (
    Caller,
    CallerDep,
    StoreDep,
    action_by,
    actor_in_product,
)
from fermion.cloud.api.errors import ApiError, bad_request, not_found, someone_elses
from fermion.cloud.api.fields import body_doc, body_fields, text_field
from fermion.cloud.api.views import device_json, iso
from fermion.cloud.domain.permissions import Action, check
from fermion.cloud.store.models import ClientType, Device, OAuthClient, OwnerKind
from fermion.cloud.store.queries import device_and_role, device_list, device_row

router = APIRouter(tags=["devices"])

_ID_FORM = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "request_transfer": {"type": "string"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "request_transfer": {"type": "boolean"},
                    },
                }
            },
        }
    }
}
_PUT_FORM = body_doc(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "notes": {"type": "string"}},
    }
)


@router.get("/v1/devices", summary="Devices claimed by the caller (a product token: the product's)")
async def list_devices(caller: CallerDep, store: StoreDep) -> list[dict[str, Any]]:
    if caller.kind is OwnerKind.USER:
        condition = Device.owner_user_id == caller.user_id
    elif caller.kind is OwnerKind.CUSTOMER:
        condition = Device.owner_customer_id == caller.customer_id
    else:
        condition = Device.product_id == caller.product_id
    async with store.read() as session:
        rows = await device_list(session, condition)
    return [device_json(r) for r in rows]


@router.get("/v1/devices/{device_id}", summary="One device")
async def get_device(device_id: str, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    # The hot read: one statement on the driver (device, owners, key, the caller's role).
    async with store.direct_read() as db:
        found = await device_and_role(
            db, device_id_param(device_id), caller.user_id if caller.is_user else None
        )
    if found is None:
        raise not_found(f"device {device_id} not found")
    row, role = found
    authorize_with_role(caller, row.device, role, Action.DEVICE_VIEW)
    return device_json(row)


@router.post(
    "/v1/devices",
    summary="Claim a device",
    description=(
        "Claims a device nobody owns. As at Particle, the device must be connected now, "
        "except for the product acting on its own device: a team member allowed to claim in "
        "the device's product (Developer or above), or a customer token the product minted "
        "(by its team, its product token, or one of its two-legged server clients)."
    ),
    openapi_extra=_ID_FORM,
)
async def claim_device(request: Request, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    fields = await body_fields(request)
    raw = text_field(fields, "id", required=True, max_len=100)
    assert raw is not None
    device_id = device_id_param(raw)
    async with store.write() as session:
        row = await device_row(session, device_id, for_update=True)
        if row is None:
            raise not_found("device not found")
        device = row.device
        if caller.kind is OwnerKind.CLIENT:
            raise ApiError(
                403,
                "a product token cannot claim a device; claim it with a customer token "
                "(POST /oauth/token grant_type=client_credentials scope=customer=<email>)",
            )
        product_acting = False
        if caller.kind is OwnerKind.CUSTOMER:
            if device.product_id != caller.product_id:
                raise not_found("device not found")
            if device.owner_customer_id == caller.customer_id:
                return _claimed(device_id)
            if device.owner_customer_id is not None or device.owner_user_id is not None:
                raise someone_elses()
            product_acting = await _minted_by_the_product(session, caller)
            new_owner = {"customer_id": caller.customer_id}
        else:
            if device.owner_user_id == caller.user_id:
                return _claimed(device_id)
            if device.owner_customer_id is not None or device.owner_user_id is not None:
                raise someone_elses()
            if device.product_id is not None:
                actor = await actor_in_product(session, caller, device.product_id)
                if actor is None:
                    raise not_found("device not found")
                check(actor, Action.DEVICE_CLAIM, device.product_id)
                product_acting = True
            new_owner = {"user_id": caller.user_id}
        if not product_acting and not device.online:
            raise _not_connected(device_id)
        devices.claim(
            session,
            device,
            action_by(caller, request),
            owner=f"{caller.kind.value}:{caller.email}",
            **new_owner,
        )
    return _claimed(device_id)


NOT_CONNECTED = "The device must be online to be claimed."


def _not_connected(device_id: str) -> ApiError:
    # Knowing a device id proves nothing: claiming by id needs the device connected now, as at
    # Particle, so whoever claims it is near it (or the product's team claims it).
    return ApiError(
        403,
        f"id: device {device_id} is not connected; a device is claimed by id only while it is "
        "online. Connect it to this cloud and claim it again (its product's team, Developer "
        "or above, may claim it offline).",
        errors=[NOT_CONNECTED],
    )


async def _minted_by_the_product(session: AsyncSession, caller: Caller) -> bool:
    """Whether a customer token was minted by the product acting for its customer: by its team
    or product token (``POST /v1/products/:p/customers``: no client) or by one of its
    two-legged (server) clients, whose secret never leaves the product's servers. A token from
    an installed or web client (a customer logging in through an app, whose client secret ships
    with the app) proves nothing more than the customer's word."""
    if caller.oauth_client_id is None:
        return True
    kind = await session.scalar(
        select(OAuthClient.type).where(
            OAuthClient.id == caller.oauth_client_id, OAuthClient.product_id == caller.product_id
        )
    )
    return kind == ClientType.SERVER


def _claimed(device_id: str) -> dict[str, Any]:
    return {"ok": True, "deviceID": device_id, "claimed": True}


@router.delete("/v1/devices/{device_id}", summary="Unclaim a device (user or customer owner)")
async def unclaim_device(
    device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    async with store.write() as session:
        row = await load_device(session, caller, device_id, Action.DEVICE_UNCLAIM, for_update=True)
        devices.unclaim(session, row, action_by(caller, request))
    return {"ok": True}


@router.put(
    "/v1/devices/{device_id}", summary="Rename a device or set its notes", openapi_extra=_PUT_FORM
)
async def update_device(
    device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    name = fields.get("name")
    notes = fields.get("notes")
    if name is None and notes is None:
        raise bad_request("name: one of name or notes is required")
    async with store.write() as session:
        row = await load_device(session, caller, device_id, Action.DEVICE_EDIT)
        device = row.device
        text = None
        if name is not None:
            text = text_field(fields, "name", max_len=200)
            if text is None or not text.strip():
                raise bad_request("name: must not be empty")
            text = text.strip()
        new_notes = None if notes is None else text_field(fields, "notes", max_len=10_000) or ""
        devices.edit(session, device, action_by(caller, request), name=text, notes=new_notes)
        reply: dict[str, Any] = {"id": device.id}
        if name is not None:
            reply["name"] = device.name
        if notes is not None:
            reply["notes"] = device.notes
        reply["updated_at"] = iso(device.updated_at)
    return reply
