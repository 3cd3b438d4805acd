"""A product's OAuth clients: create, update, delete (revoking every token the client minted).

The secret is hashed by the caller (argon2 is slow on purpose, so the API hashes it before it
takes the write transaction) and never stored.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import By
from fermion.cloud.store.models import AccessToken, ClientType, OAuthClient, Product
from fermion.cloud.tokens import revoke
from fermion.errors import NotFound


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


async def _new_client_id(session: AsyncSession, name: str, product_slug: str) -> str:
    base = _slug(name) or _slug(product_slug) or "client"
    for digits in (4, 4, 4, 6, 8, 12):
        candidate = f"{base}-{secrets.randbelow(10**digits):0{digits}d}"
        taken = await session.scalar(
            select(OAuthClient.id).where(OAuthClient.client_id == candidate)
        )
        if taken is None:
            return candidate
    return f"{base}-{secrets.token_hex(8)}"


async def find_client(session: AsyncSession, product: Product, client_id: str) -> OAuthClient:
    client = await session.scalar(
        select(OAuthClient).where(
            OAuthClient.client_id == client_id, OAuthClient.product_id == product.id
        )
    )
    if client is None:
        raise NotFound(f"client {client_id!r} not found in product {product.slug}")
    return client


async def create_client(
    session: AsyncSession,
    product: Product,
    *,
    name: str,
    client_type: ClientType,
    secret_hash: str,
    by: By,
    scope: str | None = None,
    redirect_uri: str | None = None,
) -> OAuthClient:
    client = OAuthClient(
        client_id=await _new_client_id(session, name, product.slug),
        product_id=product.id,
        name=name,
        type=client_type.value,
        secret_hash=secret_hash,
        redirect_uri=redirect_uri,
        scope=scope,
    )
    session.add(client)
    await session.flush()
    by.record(
        session,
        "client.create",
        product_id=product.id,
        detail={"client_id": client.client_id, "type": client.type, "scope": scope},
    )
    return client


def update_client(
    session: AsyncSession, product: Product, client: OAuthClient, by: By, **wanted: Any
) -> None:
    """Set ``name``, ``scope`` and ``redirect_uri`` (those given); audit what changed."""
    changes: dict[str, Any] = {}
    for column, value in wanted.items():
        before = getattr(client, column)
        if value != before:
            changes[column] = [before, value]
            setattr(client, column, value)
    if changes:
        by.record(
            session,
            "client.update",
            product_id=product.id,
            detail={"client_id": client.client_id, **changes},
        )


async def delete_client(
    session: AsyncSession, product: Product, client: OAuthClient, by: By
) -> None:
    await revoke(
        session,
        AccessToken.oauth_client_id == client.id,
        actor=by.label,
        request_id=by.request_id,
        product_id=product.id,
    )
    by.record(
        session,
        "client.delete",
        product_id=product.id,
        detail={"client_id": client.client_id, "type": client.type},
    )
    await session.delete(client)
