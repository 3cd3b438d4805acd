"""Products and their devices: list, show, import, edit, remove, unclaim.

Shapes follow Particle's product API (reference §4.1). A customer token sees and acts on its own
devices only; a product client token acts for its product only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from fermion.cloud.actions import By, devices
from fermion.cloud.api.auth import Caller, CallerDep, StoreDep, action_by, request_id
from fermion.cloud.api.errors import bad_request
from fermion.cloud.api.fields import body_doc, body_fields, text_field
from fermion.cloud.api.product_access import (
    Standing,
    load_product,
    load_product_device,
    paging,
    product_owner_email,
    total_pages,
)
from fermion.cloud.api.views import device_json, iso
from fermion.cloud.domain.permissions import Action, Principal
from fermion.cloud.domain.platforms import BY_ID
from fermion.cloud.ownership import clear_notes
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import (
    Customer,
    Device,
    OwnerKind,
    Product,
    TeamMembership,
    Transport,
    User,
    utcnow,
)
from fermion.cloud.store.queries import DeviceRow, as_device_row, device_rows
from fermion.ids import parse_device_id

router = APIRouter(tags=["products"])

MAX_IMPORT_IDS = 10_000
_SORT = {
    "deviceName": Device.name,
    "deviceId": Device.id,
    "firmwareVersion": Device.id,  # Fermion does not track firmware versions
    "lastConnection": Device.last_heard,
}


def product_json(product: Product, owner_email: str | None) -> dict[str, Any]:
    return {
        "id": product.id,
        "platform_id": product.platform_id,
        "name": product.name,
        "slug": product.slug,
        "description": product.description,
        "subscription_id": None,
        "user": owner_email,
        "groups": [],
        "settings": {"location": {}, "known_application": {"opt_in": False}, "quarantine": False},
        "device_protection": "disabled",
        "created_at": iso(product.created_at),
    }


def product_device_json(row: DeviceRow) -> dict[str, Any]:
    body = device_json(row)
    body.update(
        {
            "firmware_product_id": row.device.product_id,
            "groups": [],
            "firmware_version": None,
            "desired_firmware_version": None,
            "targeted_firmware_release_version": None,
            "development": False,
            "quarantined": False,
            "denied": False,
            "device_protection": {"status": "disabled"},
        }
    )
    return body


# --- products ---------------------------------------------------------------------------------


async def _visible_products(session: AsyncSession, caller: Caller) -> list[dict[str, Any]]:
    if caller.kind is OwnerKind.USER:
        products = (
            await session.scalars(
                select(Product)
                .join(TeamMembership, TeamMembership.product_id == Product.id)
                .where(TeamMembership.user_id == caller.user_id)
                .order_by(Product.id)
            )
        ).all()
    elif caller.kind is OwnerKind.CLIENT and caller.product_id is not None:
        found = await session.get(Product, caller.product_id)
        products = [found] if found is not None else []
    else:  # customers do not see products (Particle's customers:* scopes have no products:list)
        products = []
    return [product_json(p, await product_owner_email(session, p.id)) for p in products]


@router.get("/v1/user/products", summary="Products the token's owner is on the team of")
async def list_user_products(caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        return {"products": await _visible_products(session, caller)}


@router.get("/v1/products", summary="Products (the path particle-api-js listProducts calls)")
async def list_products(caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        return {"products": await _visible_products(session, caller)}


@router.get("/v1/products/{product}", summary="One product, by numeric id or slug")
async def get_product(product: str, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        st = await load_product(session, caller, product, Action.PRODUCT_VIEW)
        owner = await product_owner_email(session, st.product.id)
        return {"product": product_json(st.product, owner)}


# --- product devices --------------------------------------------------------------------------


@router.get("/v1/products/{product}/devices", summary="Devices in the product, paged")
async def list_product_devices(
    product: str,
    caller: CallerDep,
    store: StoreDep,
    device_id: str | None = Query(None, alias="deviceId", max_length=100),
    device_name: str | None = Query(None, alias="deviceName", max_length=200),
    groups: str | None = Query(None, max_length=1000),
    serial_number: str | None = Query(None, alias="serialNumber", max_length=100),
    sort_attr: str | None = Query(None, alias="sortAttr", max_length=40),
    sort_dir: str | None = Query(None, alias="sortDir", max_length=10),
    quarantined: bool | None = Query(None),
    page: int | None = Query(None, ge=1, le=1_000_000),
    per_page_camel: int | None = Query(None, alias="perPage", ge=1, le=1000),
    per_page_snake: int | None = Query(None, alias="per_page", ge=1, le=1000),
) -> dict[str, Any]:
    page, per_page = paging(page, per_page_camel or per_page_snake)
    if sort_attr is not None and sort_attr not in _SORT:
        raise bad_request(f"sortAttr: {sort_attr!r} is not one of {', '.join(_SORT)}")
    if sort_dir is not None and sort_dir not in ("asc", "desc"):
        raise bad_request(f"sortDir: {sort_dir!r} is not one of asc, desc")
    async with store.read() as session:
        st = await load_product(session, caller, product, Action.DEVICE_VIEW)
        conditions: list[Any] = [Device.product_id == st.product.id]
        if st.actor is Principal.CUSTOMER:
            conditions.append(Device.owner_customer_id == caller.customer_id)
        if device_id:
            conditions.append(Device.id.contains(device_id.strip().lower(), autoescape=True))
        if device_name:
            conditions.append(
                func.lower(Device.name).contains(device_name.strip().lower(), autoescape=True)
            )
        if quarantined:  # Fermion has no quarantine: no device is in it
            conditions.append(Device.id.is_(None))
        total = await session.scalar(select(func.count()).select_from(Device).where(*conditions))
        if sort_attr is None:
            order = [Device.last_handshake_at.desc().nulls_last(), Device.id]
        else:
            column = _SORT[sort_attr]
            primary = column.desc() if sort_dir == "desc" else column.asc()
            order = [primary.nulls_last(), Device.id]
        rows = (
            await session.execute(
                device_rows()
                .where(*conditions)
                .order_by(*order)
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
        ).all()
        devices = [as_device_row(r) for r in rows]
        customer_ids = {d.device.owner_customer_id for d in devices} - {None}
        customers = []
        if customer_ids:
            found = await session.execute(
                select(Customer.id, Customer.email)
                .where(Customer.id.in_(customer_ids))
                .order_by(Customer.id)
            )
            customers = [{"id": str(cid), "username": email} for cid, email in found]
    return {
        "devices": [product_device_json(d) for d in devices],
        "customers": customers,
        "meta": {"total_pages": total_pages(total or 0, per_page), "total": total or 0},
    }


def _ids_from_file(upload: UploadFile, raw: bytes) -> list[str]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise bad_request(f"file: {upload.filename or 'upload'} is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


async def _requested_ids(fields: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    given = False
    single = fields.get("id")
    if single is not None:
        given = True
        if not isinstance(single, str | int):
            raise bad_request("id: must be a device id string")
        ids.append(str(single))
    for name in ("ids", "ids[]"):
        many = fields.get(name)
        if many is None:
            continue
        given = True
        if isinstance(many, str):
            many = [part for part in many.replace(",", "\n").splitlines()]
        if not isinstance(many, list) or not all(isinstance(i, str | int) for i in many):
            raise bad_request(f"{name}: must be a list of device id strings")
        ids.extend(str(i) for i in many)
    upload = fields.get("file")
    if upload is not None:
        given = True
        if not isinstance(upload, UploadFile):
            raise bad_request("file: must be an uploaded file of device ids, one per line")
        ids.extend(_ids_from_file(upload, await upload.read()))
    if not given:
        raise bad_request("id: is required (or ids, a list, or file, one device id per line)")
    ids = [i.strip() for i in ids if i.strip()]
    if not ids:
        raise bad_request("id: no device ids given")
    if len(ids) > MAX_IMPORT_IDS:
        raise bad_request(f"ids: more than {MAX_IMPORT_IDS} device ids in one import")
    return list(dict.fromkeys(ids))  # keep order, drop repeats


@router.post(
    "/v1/products/{product}/devices",
    summary="Import devices into the product (id, ids, or a file of ids)",
    description=(
        "A device id Fermion has never seen is created in the product. A device already in "
        "another product is reported in `nonmemberDeviceIds`, one whose platform differs from "
        "the product's, or a string that is not a 24-hex-digit device id, in `invalidDeviceIds`. "
        "A device someone owns outside any product joins only when its owner imports it "
        "(`protectedDeviceIds` otherwise, nothing changed); `claim_user` claims devices nobody "
        "owns and never replaces an owner."
    ),
    openapi_extra=body_doc(
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "ids": {"type": "array", "items": {"type": "string"}},
                "claim_user": {"type": "string"},
            },
        },
        multipart=True,
    ),
)
async def import_devices(
    product: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    requested = await _requested_ids(fields)
    claim_user = text_field(fields, "claim_user", max_len=254)
    result: dict[str, list[str]] = {
        "updatedDeviceIds": [],
        "existingDeviceIds": [],
        "nonmemberDeviceIds": [],
        "invalidDeviceIds": [],
        "protectedDeviceIds": [],
    }
    rid = request_id(request)
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.DEVICE_ADD)
        claim_user_id = await _claim_user(session, st, claim_user)
        platform = BY_ID.get(st.product.platform_id)
        transport = platform.transport if platform else Transport.TCP
        valid = {raw: parse_device_id(raw) for raw in requested}
        known = {
            d.id: d
            for d in (
                await session.scalars(
                    select(Device).where(Device.id.in_([v for v in valid.values() if v]))
                )
            ).all()
        }
        now = utcnow()
        for raw, device_id in valid.items():
            if device_id is None:
                result["invalidDeviceIds"].append(raw)
                continue
            device = known.get(device_id)
            if device is None:
                device = Device(
                    id=device_id,
                    platform_id=st.product.platform_id,
                    transport=transport,
                    product_id=st.product.id,
                    created_at=now,
                    updated_at=now,
                )
                session.add(device)
                known[device_id] = device
            elif device.product_id == st.product.id:
                result["existingDeviceIds"].append(device_id)
                continue
            elif device.product_id is not None:
                result["nonmemberDeviceIds"].append(device_id)
                continue
            elif device.platform_id != st.product.platform_id:
                result["invalidDeviceIds"].append(device_id)
                continue
            elif not _owner_consents(caller, device):
                # Someone owns it outside any product: only its owner brings it into one (or
                # a cloud administrator, `fermion admin assign-device`).
                result["protectedDeviceIds"].append(device_id)
                continue
            else:
                device.product_id = st.product.id
                device.updated_at = now
            detail: dict[str, Any] = {}
            if clear_notes(device):
                detail["notes"] = "cleared"  # they were written outside this product
            result["updatedDeviceIds"].append(device_id)
            record(
                session,
                st.label,
                "device.import",
                device_id=device_id,
                product_id=st.product.id,
                request_id=rid,
                at=now,
                detail=detail or None,
            )
            # claim_user claims a device nobody owns; it never replaces an owner.
            if (
                claim_user_id is not None
                and device.owner_user_id is None
                and device.owner_customer_id is None
            ):
                devices.claim(
                    session,
                    device,
                    By(st.label, rid),
                    owner=f"user:{claim_user}",
                    user_id=claim_user_id,
                    at=now,
                )
    return {"updated": len(result["updatedDeviceIds"]), **result}


def _owner_consents(caller: Caller, device: Device) -> bool:
    """Whether a device outside any product may join the caller's product: nobody owns it,
    or the caller is its owner (who also holds DEVICE_ADD there, checked before)."""
    if device.owner_user_id is None and device.owner_customer_id is None:
        return True
    return caller.is_user and device.owner_user_id == caller.user_id


async def _claim_user(session: AsyncSession, st: Standing, email: str | None) -> int | None:
    """``claim_user``: a member of the product's team to claim the imported devices to."""
    if email is None:
        return None
    user_id = await session.scalar(
        select(User.id)
        .join(TeamMembership, TeamMembership.user_id == User.id)
        .where(
            func.lower(User.email) == email.strip().lower(),
            TeamMembership.product_id == st.product.id,
        )
    )
    if user_id is None:
        raise bad_request(f"claim_user: {email!r} is not on the team of product {st.product.slug}")
    return user_id


@router.get("/v1/products/{product}/devices/{device_id}", summary="One device in the product")
async def get_product_device(
    product: str, device_id: str, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    async with store.read() as session:
        _, row = await load_product_device(session, caller, product, device_id, Action.DEVICE_VIEW)
        return product_device_json(row)


_EDITABLE = ("name", "notes")
_ACCEPTED_NOOP = ("signal", "development", "desired_firmware_version", "flash")


@router.put(
    "/v1/products/{product}/devices/{device_id}",
    summary="Rename a product device or set its notes",
    openapi_extra=body_doc(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "notes": {"type": "string", "maxLength": 10000},
                "signal": {"type": "string"},
                "development": {"type": "boolean"},
            },
        }
    ),
)
async def update_product_device(
    product: str, device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    name = text_field(fields, "name", max_len=200)
    notes = text_field(fields, "notes", max_len=10_000)
    if name is None and notes is None and not any(k in fields for k in _ACCEPTED_NOOP):
        raise bad_request("name: is required (or notes)")
    async with store.write() as session:
        st, row = await load_product_device(
            session, caller, product, device_id, Action.DEVICE_EDIT, for_update=True
        )
        device = row.device
        devices.edit(session, device, action_by(st, request), name=name, notes=notes)
        body = product_device_json(row)
    body["updated_at"] = iso(device.updated_at)
    return body


@router.delete(
    "/v1/products/{product}/devices/{device_id}",
    status_code=204,
    summary="Remove a device from the product (unclaims it when a customer owns it)",
)
async def remove_product_device(
    product: str, device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> Response:
    async with store.write() as session:
        st, row = await load_product_device(
            session, caller, product, device_id, Action.DEVICE_REMOVE, for_update=True
        )
        devices.remove_from_product(session, row, action_by(st, request))
    return Response(status_code=204)


@router.delete(
    "/v1/products/{product}/devices/{device_id}/owner",
    summary="Unclaim a product device, keeping it in the product",
)
async def unclaim_product_device(
    product: str, device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    async with store.write() as session:
        st, row = await load_product_device(
            session, caller, product, device_id, Action.DEVICE_UNCLAIM, for_update=True
        )
        devices.unclaim(session, row, action_by(st, request))
    return {"ok": True}
