"""A product's OAuth clients: list, create (the secret is shown once and stored as argon2id),
rename or rescope, delete (revoking every token the client minted).

``type`` is Particle's ``installed`` or ``web``, or ``server`` for a two-legged server client.
Particle's console names are accepted too: "Two-Legged Auth (Server)" (also ``two-legged``) is
``server``; "Simple Auth (Mobile/Web App)" (also ``simple``) is ``installed`` limited to the
``customers:create`` scope, as the console makes it. A client with no scope (any type) may mint
product tokens and customer tokens (``scope=customer=<email>``), as on Particle.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from fermion.cloud.actions import clients
from fermion.cloud.api.auth import CallerDep, StoreDep, action_by
from fermion.cloud.api.errors import bad_request
from fermion.cloud.api.fields import body_doc, body_fields, text_field
from fermion.cloud.api.product_access import load_product
from fermion.cloud.credentials import hash_password_async
from fermion.cloud.domain.permissions import Action
from fermion.cloud.store.models import ClientType, OAuthClient

router = APIRouter(tags=["clients"])

SIMPLE_SCOPE = "customers:create"
VALID_SCOPES = {SIMPLE_SCOPE, "*:*"}
_TYPE_ALIASES = {
    "installed": (ClientType.INSTALLED, None),
    "web": (ClientType.WEB, None),
    "server": (ClientType.SERVER, None),
    "two-legged": (ClientType.SERVER, None),
    "two_legged": (ClientType.SERVER, None),
    "twolegged": (ClientType.SERVER, None),
    "two-legged auth (server)": (ClientType.SERVER, None),
    "simple": (ClientType.INSTALLED, SIMPLE_SCOPE),
    "simple auth (mobile/web app)": (ClientType.INSTALLED, SIMPLE_SCOPE),
}
_TYPE_NAMES = "installed, web, server (or two-legged, simple)"

_CLIENT_UPDATE_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "redirect_uri": {"type": "string"},
        "scope": {"type": "string"},
    },
}
_CLIENT_BODY = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "type": {"type": "string", "enum": ["installed", "web", "server", "two-legged", "simple"]},
        "redirect_uri": {"type": "string"},
        "scope": {"type": "string"},
    },
}


def client_json(client: OAuthClient) -> dict[str, Any]:
    body: dict[str, Any] = {"id": client.client_id, "name": client.name, "type": client.type}
    if client.redirect_uri:
        body["redirect_uri"] = client.redirect_uri
    if client.scope:
        body["scope"] = client.scope
    return body


def _scope(raw: str | None) -> str | None:
    """A space-separated scope list; ``none`` (or nothing) means full permissions."""
    if raw is None or raw.strip().lower() == "none":
        return None
    parts = raw.split()
    unknown = [p for p in parts if p not in VALID_SCOPES]
    if unknown:
        raise bad_request(f"scope: {unknown[0]!r} is not one of customers:create, *:*, none")
    return " ".join(dict.fromkeys(parts)) or None


def _redirect_uri(raw: str | None, client_type: ClientType) -> str | None:
    if client_type is not ClientType.WEB:
        if raw is not None:
            raise bad_request("redirect_uri: only a web client has a redirect URI")
        return None
    if raw is None:
        raise bad_request("redirect_uri: is required for a web client")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request("redirect_uri: must be an http or https URL")
    return raw


@router.get("/v1/products/{product}/clients", summary="The product's OAuth clients")
async def list_clients(product: str, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        st = await load_product(session, caller, product, Action.CLIENT_VIEW)
        clients = (
            await session.scalars(
                select(OAuthClient)
                .where(OAuthClient.product_id == st.product.id)
                .order_by(OAuthClient.id)
            )
        ).all()
    return {"ok": True, "clients": [client_json(c) for c in clients]}


@router.post(
    "/v1/products/{product}/clients",
    summary="Create an OAuth client; its secret is in this reply only",
    description=(
        "`type`: `installed`, `web` (needs `redirect_uri`), or `server` for two-legged auth; "
        "Particle's console names `Two-Legged Auth (Server)` and `Simple Auth (Mobile/Web App)` "
        "are accepted. `scope`: `customers:create`, `*:*` or `none` (full permissions)."
    ),
    openapi_extra=body_doc(_CLIENT_BODY),
)
async def create_client(
    product: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    name = text_field(fields, "name", required=True, max_len=200)
    raw_type = text_field(fields, "type", required=True, max_len=60)
    assert name is not None and raw_type is not None
    found = _TYPE_ALIASES.get(raw_type.strip().lower())
    if found is None:
        raise bad_request(f"type: {raw_type!r} is not one of {_TYPE_NAMES}")
    client_type, default_scope = found
    raw_scope = text_field(fields, "scope", max_len=200)
    scope = _scope(raw_scope) if raw_scope is not None else default_scope
    redirect_uri = _redirect_uri(text_field(fields, "redirect_uri", max_len=2000), client_type)
    async with store.read() as session:
        await load_product(session, caller, product, Action.CLIENT_MANAGE)
    secret = secrets.token_hex(20)
    secret_hash = await hash_password_async(secret)  # slow on purpose: outside the write lock
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.CLIENT_MANAGE)
        client = await clients.create_client(
            session,
            st.product,
            name=name,
            client_type=client_type,
            secret_hash=secret_hash,
            scope=scope,
            redirect_uri=redirect_uri,
            by=action_by(st, request),
        )
    return {"ok": True, "client": {**client_json(client), "secret": secret}}


@router.put(
    "/v1/products/{product}/clients/{client_id}",
    summary="Rename or rescope an OAuth client",
    openapi_extra=body_doc(_CLIENT_UPDATE_BODY),
)
async def update_client(
    product: str, client_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    name = text_field(fields, "name", max_len=200)
    raw_scope = text_field(fields, "scope", max_len=200)
    raw_redirect = text_field(fields, "redirect_uri", max_len=2000)
    if name is None and raw_scope is None and raw_redirect is None:
        raise bad_request("name: is required (or scope, or redirect_uri)")
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.CLIENT_MANAGE)
        client = await clients.find_client(session, st.product, client_id)
        wanted: dict[str, Any] = {}
        if name is not None:
            wanted["name"] = name
        if raw_scope is not None:
            wanted["scope"] = _scope(raw_scope)
        if raw_redirect is not None:
            wanted["redirect_uri"] = _redirect_uri(raw_redirect, ClientType(client.type))
        clients.update_client(session, st.product, client, action_by(st, request), **wanted)
    return {"ok": True, "client": client_json(client)}


@router.delete(
    "/v1/products/{product}/clients/{client_id}",
    status_code=204,
    summary="Delete an OAuth client and revoke every token it minted",
)
async def delete_client(
    product: str, client_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> Response:
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.CLIENT_MANAGE)
        client = await clients.find_client(session, st.product, client_id)
        await clients.delete_client(session, st.product, client, action_by(st, request))
    return Response(status_code=204)
