"""The console's pages and forms.

Reads come from the store, after the same standing checks the API routes make
(``access.load_device``, ``product_access.standing``). Every change is the REST call the
CLI would make, sent in-process with the session's token (``apicall``): the console never
decides a permission, it only hides buttons the permission table would refuse anyway.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import UploadFile

from fermion.cloud.api.access import load_device
from fermion.cloud.api.errors import ApiError
from fermion.cloud.api.product_access import load_product as product_standing
from fermion.cloud.api.views import fp
from fermion.cloud.console import apicall
from fermion.cloud.console.device import add_activity, load_device_view
from fermion.cloud.console.fleet import CARD_ORDER, LABELS, FleetQuery, Health, load_fleet
from fermion.cloud.console.session import (
    CONSOLE_CLIENT,
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_CSRF_COOKIE,
    SESSION_SECONDS,
    ConsoleSession,
    CsrfRefused,
    LoginRequired,
    clear_session_cookie,
    current_session,
    login_url,
    new_login_csrf,
    require_csrf,
    safe_next,
    same_secret,
    set_login_csrf_cookie,
    set_session_cookie,
)
from fermion.cloud.domain.keypolicy import TRANSPORT_ALGORITHM
from fermion.cloud.domain.permissions import Action, PermissionDenied, Role, check
from fermion.cloud.store.models import ClientType, Product

_HERE = Path(__file__).parent
MAX_KEY_UPLOAD = 16_384  # a PEM public key is well under 1 kB; the API takes up to this

templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


templates.filters["when"] = _when
templates.filters["fingerprint"] = fp


def _outcome_detail(text: str | None) -> str:
    """The device server keeps a small JSON note per outcome: its reason and a count."""
    if not text:
        return ""
    try:
        note = json.loads(text)
    except ValueError:
        return text
    if not isinstance(note, dict):
        return text
    reason = str(note.get("reason", ""))
    count = note.get("count")
    return f"{reason} (×{count})" if isinstance(count, int) and count > 1 else reason


templates.filters["outcome_detail"] = _outcome_detail
templates.globals["LABELS"] = LABELS
templates.globals["Health"] = Health
templates.globals["Action"] = Action
templates.globals["CSRF_FIELD"] = CSRF_FIELD

# Shown after a change (post/redirect/get); the query string carries a key, never free text.
NOTICES = {
    "approved": "Key approved. The device is let in the next time it connects.",
    "rejected": "Key rejected. The device stays refused until its key is repaired.",
    "unclaimed": "Device unclaimed.",
    "removed": "Device removed from the product.",
    "renamed": "Device renamed.",
    "repaired": "Key replaced; the claim is kept. The device is let in when it reconnects.",
    "invited": "Team member invited.",
    "role": "Role changed.",
    "member_removed": "Team member removed.",
    "customer_created": "Customer created.",
    "customer_deleted": "Customer deleted.",
    "client_deleted": "OAuth client deleted.",
}


class ConsoleRoute(APIRoute):
    """Turns the errors a page can meet into pages, not the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                if request.headers.get("accept", "").startswith("application/json"):
                    return JSONResponse({"ok": False, "error": "login required"}, 401)
                return RedirectResponse(login_url(exc.next_url), status_code=303)
            except CsrfRefused:
                return error_page(
                    request,
                    403,
                    "The form's security token is missing or out of date. Go back, reload "
                    "the page and try again.",
                )
            except PermissionDenied as exc:
                return error_page(request, 403, str(exc))
            except ApiError as exc:
                return error_page(request, exc.status, exc.message)

        return route


router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
SessionDep = Annotated[ConsoleSession, Depends(current_session)]


def render(
    request: Request,
    name: str,
    status: int = 200,
    session: ConsoleSession | None = None,
    **ctx: Any,
) -> HTMLResponse:
    ctx.setdefault("notice", NOTICES.get(request.query_params.get("done", "")))
    html = templates.get_template(name).render(
        request=request,
        session=session,
        me=session.caller.email if session else None,
        csrf=session.csrf if session else None,
        **ctx,
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    # Logged in or not, as far as this request got: the header shows who, when it is known.
    session = getattr(request.state, "console_session", None)
    return render(
        request, "error.html", status=status, session=session, message=message, code=status
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def form_of(request: Request, session: ConsoleSession) -> dict[str, Any]:
    """The submitted form, once its CSRF token matches the session's."""
    form = await request.form()
    require_csrf(session, _text(form.get(CSRF_FIELD)) or request.headers.get(CSRF_HEADER))
    return {key: form.get(key) for key in form}


def _text(value: Any, limit: int = 1000) -> str:
    return value[:limit] if isinstance(value, str) else ""


# --- login -------------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    try:
        await current_session(request)
        return redirect(next_url)
    except LoginRequired:
        pass
    return _login_page(request, next_url)


def _login_page(request: Request, next_url: str, error: str | None = None, status: int = 200):
    value = new_login_csrf()
    response = render(
        request, "login.html", status=status, next_url=next_url, login_csrf=value, error=error
    )
    set_login_csrf_cookie(response, value)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    next_url = safe_next(_text(form.get("next")))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not same_secret(cookie, _text(form.get(CSRF_FIELD))):
        # Refused all the same, but with a fresh form: the usual cause is a stale login page.
        error = "The login form had expired or was not sent from this page; please try again."
        return _login_page(request, next_url, error, status=403)
    reply = await apicall.call(
        request,
        "POST",
        "/oauth/token",
        token=None,
        data={
            "grant_type": "password",
            "username": _text(form.get("username"), 254),
            "password": _text(form.get("password")),
            "client_id": CONSOLE_CLIENT,
            "client_secret": CONSOLE_CLIENT,
            "expires_in": str(SESSION_SECONDS),
        },
    )
    if not reply.ok:
        error = "Email or password is wrong." if reply.status in (400, 401) else reply.message
        return _login_page(request, next_url, error, status=reply.status)
    response = redirect(next_url)
    set_session_cookie(response, reply.body["access_token"])
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    await form_of(request, session)
    await apicall.call(request, "DELETE", "/v1/access_tokens/current", token=session.token)
    response = redirect("/console/login")
    clear_session_cookie(response)
    return response


# --- products ----------------------------------------------------------------------------------


@router.get("")
async def home(request: Request, session: SessionDep) -> Response:
    reply = await apicall.call(request, "GET", "/v1/user/products", token=session.token)
    products = reply.body.get("products", []) if reply.ok and isinstance(reply.body, dict) else []
    if len(products) == 1 and not request.query_params.get("all"):
        return redirect(f"/console/p/{quote(products[0]['slug'])}")
    return render(request, "home.html", session=session, products=products)


async def _product(request: Request, session: ConsoleSession, ref: str, action: Action):
    async with request.app.state.store.read() as db:
        return await product_standing(db, session.caller, ref, action)


def _can(st: Any, *actions: Action) -> set[Action]:
    can = set()
    for action in actions:
        try:
            check(st.actor, action)
        except PermissionDenied:
            continue
        can.add(action)
    return can


_PRODUCT_NAV = (
    Action.TEAM_VIEW,
    Action.CUSTOMER_VIEW,
    Action.CLIENT_VIEW,
    Action.AUDIT_VIEW,
    Action.TEAM_MANAGE,
    Action.CUSTOMER_MANAGE,
    Action.CLIENT_MANAGE,
)


@router.get("/p/{product}")
async def fleet(request: Request, product: str, session: SessionDep) -> Response:
    st = await _product(request, session, product, Action.PRODUCT_VIEW)
    query = FleetQuery.parse(dict(request.query_params))
    async with request.app.state.store.read() as db:
        data = await load_fleet(db, st.product.id, query)
    base = f"/console/p/{quote(st.product.slug)}"

    def link(**changes: Any) -> str:
        return base + "?" + urlencode(query.args(**changes))

    return render(
        request,
        "fleet.html",
        session=session,
        product=st.product,
        role=st.actor,
        can=_can(st, *_PRODUCT_NAV),
        section="fleet",
        fleet=data,
        query=query,
        link=link,
        cards=CARD_ORDER,
    )


@router.get("/p/{product}/health.json")
async def fleet_counts(request: Request, product: str, session: SessionDep) -> Response:
    st = await _product(request, session, product, Action.PRODUCT_VIEW)
    async with request.app.state.store.read() as db:
        data = await load_fleet(db, st.product.id, FleetQuery())
    return JSONResponse(
        {
            "counts": {h.value: n for h, n in data.counts.items()},
            "online": data.online,
            "offline": data.offline,
        },
        headers={"Cache-Control": "no-store"},
    )


# --- devices -----------------------------------------------------------------------------------


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
    add_activity(view, getattr(request.app.state, "devices", None))
    return render(
        request,
        "device.html",
        status=status,
        session=session,
        view=view,
        product=view.product,
        role=view.role,
        can=view.can,
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
    reply = await apicall.call(request, method, path, token=session.token, data=data)
    if reply.ok:
        return redirect(after or f"/console/devices/{quote(device_id)}?done={done}")
    if reply.status == 401:
        raise LoginRequired(f"/console/devices/{quote(device_id)}")
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
    value = _text(form.get("candidate_id"), 12)
    if not (value.isascii() and value.isdigit()):
        raise ApiError(400, "candidate_id: is not a candidate number")
    return value


@router.post("/devices/{device_id}/approve")
async def approve(request: Request, device_id: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    cid = _candidate_id(form)
    path = f"/v1/devices/{quote(device_id)}/keys/candidates/{cid}/approve"
    return await _device_action(request, session, device_id, "POST", path, "approved")


@router.post("/devices/{device_id}/reject")
async def reject(request: Request, device_id: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    cid = _candidate_id(form)
    path = f"/v1/devices/{quote(device_id)}/keys/candidates/{cid}/reject"
    return await _device_action(request, session, device_id, "POST", path, "rejected")


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
    data = {"name": _text(form.get("name"), 300)}
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


# --- team, customers, OAuth clients ------------------------------------------------------------


async def _product_page(
    request: Request,
    session: ConsoleSession,
    product: str,
    action: Action,
    section: str,
    api_path: str,
    template: str,
    status: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    st = await _product(request, session, product, action)
    reply = await apicall.call(
        request, "GET", api_path.format(p=quote(st.product.slug)), token=session.token
    )
    if not reply.ok:
        return error_page(request, reply.status, reply.message)
    return render(
        request,
        template,
        status=status,
        session=session,
        product=st.product,
        role=st.actor,
        can=_can(st, *_PRODUCT_NAV),
        section=section,
        data=reply.body,
        **ctx,
    )


async def _product_action(
    request: Request,
    session: ConsoleSession,
    product: str,
    method: str,
    api_path: str,
    done: str,
    page: Callable[..., Awaitable[HTMLResponse]],
    data: dict[str, Any] | None = None,
    field: str | None = None,
) -> Response:
    reply = await apicall.call(request, method, api_path, token=session.token, data=data)
    if reply.ok:
        return redirect(f"{request.url.path.rsplit('/', 1)[0]}?done={done}")
    if reply.status == 401:
        raise LoginRequired(request.url.path.rsplit("/", 1)[0])
    errors = {field or "form": reply.message}
    return await page(request, session, product, status=reply.status, errors=errors)


ROLE_CHOICES = [r for r in Role if r is not Role.OWNER]


async def _team(request, session, product, status=200, errors=None) -> HTMLResponse:
    return await _product_page(
        request,
        session,
        product,
        Action.TEAM_VIEW,
        "team",
        "/v1/products/{p}/team",
        "team.html",
        status=status,
        errors=errors or {},
        roles=ROLE_CHOICES,
    )


@router.get("/p/{product}/team")
async def team(request: Request, product: str, session: SessionDep) -> Response:
    return await _team(request, session, product)


@router.post("/p/{product}/team/invite")
async def team_invite(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    data = {"username": _text(form.get("username"), 254), "role": _text(form.get("role"), 40)}
    path = f"/v1/products/{quote(product)}/team"
    return await _product_action(
        request, session, product, "POST", path, "invited", _team, data, "invite"
    )


@router.post("/p/{product}/team/role")
async def team_role(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    username = _text(form.get("username"), 254)
    path = f"/v1/products/{quote(product)}/team/{quote(username, safe='')}"
    data = {"role": _text(form.get("role"), 40)}
    return await _product_action(request, session, product, "POST", path, "role", _team, data)


@router.post("/p/{product}/team/remove")
async def team_remove(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    username = _text(form.get("username"), 254)
    path = f"/v1/products/{quote(product)}/team/{quote(username, safe='')}"
    return await _product_action(request, session, product, "DELETE", path, "member_removed", _team)


async def _customers(request, session, product, status=200, errors=None) -> HTMLResponse:
    return await _product_page(
        request,
        session,
        product,
        Action.CUSTOMER_VIEW,
        "customers",
        "/v1/products/{p}/customers",
        "customers.html",
        status=status,
        errors=errors or {},
    )


@router.get("/p/{product}/customers")
async def customers(request: Request, product: str, session: SessionDep) -> Response:
    return await _customers(request, session, product)


@router.post("/p/{product}/customers/create")
async def customer_create(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    data: dict[str, Any] = {"email": _text(form.get("email"), 254)}
    password = _text(form.get("password"))
    if password:
        data["password"] = password
    else:
        data["no_password"] = "true"
    path = f"/v1/products/{quote(product)}/customers"
    return await _product_action(
        request, session, product, "POST", path, "customer_created", _customers, data, "create"
    )


@router.post("/p/{product}/customers/delete")
async def customer_delete(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    email = _text(form.get("email"), 254)
    path = f"/v1/products/{quote(product)}/customers/{quote(email, safe='')}"
    return await _product_action(
        request, session, product, "DELETE", path, "customer_deleted", _customers
    )


CLIENT_TYPES = [
    (ClientType.SERVER.value, "Two-legged (server)"),
    (ClientType.INSTALLED.value, "Simple auth (mobile or web app)"),
    (ClientType.WEB.value, "Web (redirect)"),
]


async def _clients(request, session, product, status=200, errors=None, created=None):
    return await _product_page(
        request,
        session,
        product,
        Action.CLIENT_VIEW,
        "clients",
        "/v1/products/{p}/clients",
        "clients.html",
        status=status,
        errors=errors or {},
        created=created,
        client_types=CLIENT_TYPES,
    )


@router.get("/p/{product}/clients")
async def clients(request: Request, product: str, session: SessionDep) -> Response:
    return await _clients(request, session, product)


@router.post("/p/{product}/clients/create")
async def client_create(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    data = {"name": _text(form.get("name"), 200), "type": _text(form.get("type"), 20)}
    redirect_uri = _text(form.get("redirect_uri"), 2000)
    if redirect_uri:
        data["redirect_uri"] = redirect_uri
    path = f"/v1/products/{quote(product)}/clients"
    reply = await apicall.call(request, "POST", path, token=session.token, data=data)
    if reply.status == 401:
        raise LoginRequired(f"/console/p/{quote(product)}/clients")
    if not reply.ok:
        return await _clients(
            request, session, product, status=reply.status, errors={"create": reply.message}
        )
    # The secret is shown once, in this reply, and never put in a URL or stored.
    created = reply.body.get("client") if isinstance(reply.body, dict) else None
    return await _clients(request, session, product, created=created)


@router.post("/p/{product}/clients/delete")
async def client_delete(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    client_id = _text(form.get("client_id"), 100)
    path = f"/v1/products/{quote(product)}/clients/{quote(client_id, safe='')}"
    return await _product_action(
        request, session, product, "DELETE", path, "client_deleted", _clients
    )


# --- audit -------------------------------------------------------------------------------------

_AUDIT_FILTERS = ("device_id", "actor", "action", "since", "until", "before_id")


@router.get("/p/{product}/audit")
async def audit(request: Request, product: str, session: SessionDep) -> Response:
    st = await _product(request, session, product, Action.AUDIT_VIEW)
    filters = {k: request.query_params.get(k, "").strip()[:300] for k in _AUDIT_FILTERS}
    params = {k: v for k, v in filters.items() if v}
    params["product_id"] = str(st.product.id)
    params["limit"] = "100"
    reply = await apicall.call(request, "GET", "/v1/audit", token=session.token, params=params)
    events = reply.body.get("events", []) if reply.ok and isinstance(reply.body, dict) else []
    older = None
    if len(events) == 100:
        older_args = {k: v for k, v in filters.items() if v and k != "before_id"}
        older_args["before_id"] = str(events[-1]["id"])
        older = f"/console/p/{quote(st.product.slug)}/audit?{urlencode(older_args)}"
    return render(
        request,
        "audit.html",
        status=200 if reply.ok else reply.status,
        session=session,
        product=st.product,
        role=st.actor,
        can=_can(st, *_PRODUCT_NAV),
        section="audit",
        events=events,
        filters=filters,
        error=None if reply.ok else reply.message,
        older=older,
    )


# --- mounting ----------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the console on the cloud's app: pages under /console, and / sends people there."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=_HERE / "static"), name="console-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=307)
