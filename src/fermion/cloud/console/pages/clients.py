"""A product's OAuth clients: list, create (its secret shown once), delete."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request, Response

from fermion.cloud.console import apicall
from fermion.cloud.console.pages.product_forms import product_action, product_page
from fermion.cloud.console.session import LoginRequired
from fermion.cloud.console.web import SessionDep, area_router, form_of, text
from fermion.cloud.domain.permissions import Action
from fermion.cloud.store.models import ClientType

router = area_router()


CLIENT_TYPES = [
    (ClientType.SERVER.value, "Two-legged (server)"),
    (ClientType.INSTALLED.value, "Simple auth (mobile or web app)"),
    (ClientType.WEB.value, "Web (redirect)"),
]


# ``created``, passed only after a create: the client with its secret, shown once.
_clients = product_page(router, Action.CLIENT_VIEW, "clients", client_types=CLIENT_TYPES)


@router.post("/p/{product}/clients/create")
async def client_create(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    data = {"name": text(form.get("name"), 200), "type": text(form.get("type"), 20)}
    redirect_uri = text(form.get("redirect_uri"), 2000)
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
    client_id = text(form.get("client_id"), 100)
    path = f"/v1/products/{quote(product)}/clients/{quote(client_id, safe='')}"
    return await product_action(
        request, session, product, "DELETE", path, "client_deleted", _clients
    )
