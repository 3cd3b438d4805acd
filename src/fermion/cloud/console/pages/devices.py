"""A device's page: its key health, the key it presented, its history, and the changes a
team member may make (approve, reject, rename, repair, unclaim, remove), each as its API call.

Which repair a device needs is the server's repair plan (``api.repairs.repair_plan_for``, the
one the CLI runs): the page shows its steps for the key the device presented, and offers the
atomic repair upload only where the plan for an uploaded key is that repair.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile

from fermion.cloud.api.access import load_device
from fermion.cloud.api.errors import ApiError
from fermion.cloud.api.repairs import KeyGiven, repair_plan_for, served_transports
from fermion.cloud.console import apicall
from fermion.cloud.console.device import add_activity, load_device_view
from fermion.cloud.console.session import ConsoleSession
from fermion.cloud.console.web import (
    SessionDep,
    area_router,
    error_page,
    form_of,
    redirect,
    render,
    text,
)
from fermion.cloud.domain.keypolicy import TRANSPORT_ALGORITHM
from fermion.cloud.domain.permissions import Action
from fermion.cloud.domain.repair_plan import StepKind
from fermion.cloud.store.models import Product

router = area_router()
MAX_KEY_UPLOAD = 16_384  # a PEM public key is well under 1 kB; the API takes up to this


async def _device_page(
    request: Request,
    session: ConsoleSession,
    device_id: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    message: str | None = None,
) -> HTMLResponse:
    async with request.app.state.store.read() as db:
        row = await load_device(db, session.caller, device_id, Action.DEVICE_VIEW)
        view = await load_device_view(db, session.caller, row)
        served = served_transports(request)
        plan = await repair_plan_for(db, session.caller, row.device.id, served=served)
        with_file = await repair_plan_for(
            db, session.caller, row.device.id, key_given=KeyGiven.FILE, served=served
        )
    add_activity(view, getattr(request.app.state, "devices", None))
    offers_atomic = any(s.kind is StepKind.ATOMIC_REPAIR for s in with_file.plan.steps)
    return render(
        request,
        "device.html",
        status=status,
        session=session,
        view=view,
        product=view.product,
        role=view.role,
        can=view.can,
        plan=plan.plan,
        offers_atomic=offers_atomic,
        section="fleet",
        errors=errors or {},
        error=message,
    )


@router.get("/devices/{device_id}")
async def device_page(request: Request, device_id: str, session: SessionDep) -> Response:
    return await _device_page(request, session, device_id)


@router.get("/devices/{device_id}/status")
async def device_status(request: Request, device_id: str, session: SessionDep) -> Response:
    async with request.app.state.store.read() as db:
        row = await load_device(db, session.caller, device_id, Action.DEVICE_VIEW)
        view = await load_device_view(db, session.caller, row)
    return JSONResponse(view.status(), headers={"Cache-Control": "no-store"})


async def _device_action(
    request: Request,
    session: ConsoleSession,
    device_id: str,
    method: str,
    path: str,
    done: str,
    *,
    data: dict[str, Any] | None = None,
    field: str | None = None,
    after: str | None = None,
) -> Response:
    back = f"/console/devices/{quote(device_id)}"
    reply = await apicall.form_call(request, session, method, path, back=back, data=data)
    if reply.ok:
        return redirect(after or f"{back}?done={done}")
    if reply.status == 404:
        return error_page(request, 404, reply.message)
    errors = {field: reply.message} if field else None
    return await _device_page(
        request,
        session,
        device_id,
        status=reply.status,
        errors=errors,
        message=None if field else reply.message,
    )


def _candidate_id(form: dict[str, Any]) -> str:
    value = text(form.get("candidate_id"), 12)
    if not (value.isascii() and value.isdigit()):
        raise ApiError(400, "candidate_id: is not a candidate number")
    return value


async def _decide(
    request: Request, session: ConsoleSession, device_id: str, decision: str, done: str
) -> Response:
    """Approve or reject (``decision``) the presented key the form names."""
    form = await form_of(request, session)
    cid = _candidate_id(form)
    path = f"/v1/devices/{quote(device_id)}/keys/candidates/{cid}/{decision}"
    return await _device_action(request, session, device_id, "POST", path, done)


@router.post("/devices/{device_id}/approve")
async def approve(request: Request, device_id: str, session: SessionDep) -> Response:
    return await _decide(request, session, device_id, "approve", "approved")


@router.post("/devices/{device_id}/reject")
async def reject(request: Request, device_id: str, session: SessionDep) -> Response:
    return await _decide(request, session, device_id, "reject", "rejected")


async def _device_product_slug(
    request: Request, session: ConsoleSession, device_id: str
) -> str | None:
    """The slug of the device's product, for the product routes of the API (None: no product)."""
    async with request.app.state.store.read() as db:
        row = await load_device(db, session.caller, device_id, Action.DEVICE_VIEW)
        if row.device.product_id is None:
            return None
        product = await db.get(Product, row.device.product_id)
        return product.slug if product else None


@router.post("/devices/{device_id}/unclaim")
async def unclaim(request: Request, device_id: str, session: SessionDep) -> Response:
    await form_of(request, session)
    slug = await _device_product_slug(request, session, device_id)
    path = (
        f"/v1/products/{quote(slug)}/devices/{quote(device_id)}/owner"
        if slug
        else f"/v1/devices/{quote(device_id)}"
    )
    return await _device_action(request, session, device_id, "DELETE", path, "unclaimed")


@router.post("/devices/{device_id}/remove")
async def remove(request: Request, device_id: str, session: SessionDep) -> Response:
    await form_of(request, session)
    slug = await _device_product_slug(request, session, device_id)
    if slug is None:
        raise ApiError(400, f"device {device_id} is not in a product")
    path = f"/v1/products/{quote(slug)}/devices/{quote(device_id)}"
    # Out of the product, the team has no standing left on the device: back to the fleet.
    fleet_page = f"/console/p/{quote(slug)}?done=removed"
    return await _device_action(
        request, session, device_id, "DELETE", path, "removed", after=fleet_page
    )


@router.post("/devices/{device_id}/rename")
async def rename(request: Request, device_id: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    path = f"/v1/devices/{quote(device_id)}"
    data = {"name": text(form.get("name"), 300)}
    return await _device_action(
        request, session, device_id, "PUT", path, "renamed", data=data, field="name"
    )


@router.post("/devices/{device_id}/repair")
async def repair(request: Request, device_id: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    upload = form.get("public_key")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _device_page(
            request,
            session,
            device_id,
            status=400,
            errors={"public_key": "public_key: choose the device's .pub.pem file"},
        )
    raw = await upload.read(MAX_KEY_UPLOAD + 1)
    if len(raw) > MAX_KEY_UPLOAD:
        return await _device_page(
            request,
            session,
            device_id,
            status=400,
            errors={"public_key": f"public_key: {upload.filename} is too large for a public key"},
        )
    async with request.app.state.store.read() as db:
        row = await load_device(db, session.caller, device_id, Action.DEVICE_VIEW)
    algorithm = TRANSPORT_ALGORITHM.get(row.device.transport)
    data = {
        "publicKey": raw.decode("utf-8", "replace"),
        "filename": upload.filename[:200],
        "algorithm": algorithm.api_name if algorithm else "rsa",
    }
    path = f"/v1/devices/{quote(device_id)}/keys/repair"
    return await _device_action(
        request, session, device_id, "POST", path, "repaired", data=data, field="public_key"
    )
