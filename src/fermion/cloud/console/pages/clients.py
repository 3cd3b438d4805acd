"""A product's OAuth clients: list, create (its secret shown once), delete."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request, Response

from fermion.cloud.console import apicall
from fermion.cloud.console.pages.product_forms import (
    delete_item,
    product_page,
    section_path,
)
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
    path = section_path(product, "clients")
    back = f"/console/p/{quote(product)}/clients"
    reply = await apicall.form_call(request, session, "POST", path, back=back, data=data)
    if not reply.ok:
        return await _clients(
            request, session, product, status=reply.status, errors={"create": reply.message}
        )
    # The secret is shown once, in this reply, and never put in a URL or stored.
    created = reply.body.get("client") if isinstance(reply.body, dict) else None
    return await _clients(request, session, product, created=created)


@router.post("/p/{product}/clients/delete")
async def client_delete(request: Request, product: str, session: SessionDep) -> Response:
    return await delete_item(
        request, session, product, _clients, "clients", "client_id", 100, "client_deleted"
    )
