"""Who is calling: the token from the request, looked up by its SHA-256, as a ``Caller``.

The token may come as ``Authorization: Bearer``, or (deprecated by Particle, used by the seed's
curl lines) as ``access_token`` in the query string or the body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import By
from fermion.cloud.api.errors import unauthorized
from fermion.cloud.api.fields import body_fields
from fermion.cloud.credentials import hash_token, same_hash
from fermion.cloud.domain.permissions import Actor, Principal, Role
from fermion.cloud.store import Store
from fermion.cloud.store.direct import Runner
from fermion.cloud.store.models import (
    AccessToken,
    Customer,
    OAuthClient,
    OwnerKind,
    TeamMembership,
    User,
    utcnow,
)
from fermion.cloud.tokens import expired, revocation_generation


@dataclass(frozen=True)
class Caller:
    """The owner of the token a request carried."""

    kind: OwnerKind
    token_id: int
    client_name: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    user_id: int | None = None
    customer_id: int | None = None
    oauth_client_id: int | None = None
    product_id: int | None = None  # the product of a customer or product-client token
    email: str | None = None  # user or customer email

    @property
    def label(self) -> str:
        """How the audit trail names this caller."""
        if self.kind is OwnerKind.USER:
            return f"user:{self.email}"
        if self.kind is OwnerKind.CUSTOMER:
            return f"customer:{self.email}@product:{self.product_id}"
        return f"client:{self.client_name}@product:{self.product_id}"

    @property
    def is_user(self) -> bool:
        return self.kind is OwnerKind.USER


async def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


class _Labelled(Protocol):
    @property
    def label(self) -> str: ...


def action_by(who: _Labelled, request: Request) -> By:
    """Who makes a change (a caller, or a product standing), for an action's audit event."""
    return By(who.label, request_id(request))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def token_from_request(request: Request) -> str | None:
    token = _bearer(request) or request.query_params.get("access_token")
    if token:
        return token
    if request.method in ("POST", "PUT", "DELETE", "PATCH"):
        value = (await body_fields(request)).get("access_token")
        if isinstance(value, str) and value:
            return value
    return None


async def lookup_token(
    session: AsyncSession, token: str, now: datetime | None = None
) -> Caller | None:
    """The live token's owner, or None when the token is unknown, expired (at ``now``, by
    default the wall clock) or revoked."""
    digest = hash_token(token)
    row = (
        await session.execute(
            select(AccessToken, User.email, Customer.email, OAuthClient.client_id)
            .outerjoin(User, User.id == AccessToken.user_id)
            .outerjoin(Customer, Customer.id == AccessToken.customer_id)
            .outerjoin(OAuthClient, OAuthClient.id == AccessToken.oauth_client_id)
            .where(AccessToken.token_hash == digest)
        )
    ).first()
    if row is None:
        return None
    tok, user_email, customer_email, client_public_id = row
    if not same_hash(tok.token_hash, digest) or tok.revoked_at is not None:
        return None
    if expired(tok.expires_at, now or utcnow()):
        return None
    kind = OwnerKind(tok.owner_kind)
    return Caller(
        kind=kind,
        token_id=tok.id,
        client_name=client_public_id or tok.client_name,
        scopes=tuple(tok.scopes or ()),
        expires_at=tok.expires_at,
        user_id=tok.user_id,
        customer_id=tok.customer_id,
        oauth_client_id=tok.oauth_client_id,
        product_id=tok.product_id,
        email=user_email if kind is OwnerKind.USER else customer_email,
    )


class TokenCache:
    """Recently seen live tokens, so a burst of requests costs one lookup, not one each.

    Keyed by the token's SHA-256, never the token. A revocation in this process invalidates it
    at once; another node sharing the database sees a revocation after at most ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 2.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, int, Caller]] = {}

    def get(self, digest: str, now: datetime | None = None) -> Caller | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        seen, generation, caller = entry
        if (
            generation != revocation_generation()
            or time.monotonic() - seen > self.ttl
            or expired(caller.expires_at, now or utcnow())
        ):
            self._entries.pop(digest, None)
            return None
        return caller

    def put(self, digest: str, caller: Caller) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[digest] = (time.monotonic(), revocation_generation(), caller)

    def clear(self) -> None:
        self._entries.clear()


def token_cache(request: Request) -> TokenCache:
    return request.app.state.token_cache


async def current_caller(request: Request, store: StoreDep) -> Caller:
    token = await token_from_request(request)
    if not token:
        raise unauthorized("The access token was not found.")
    cache = token_cache(request)
    digest = hash_token(token)
    now = request.app.state.clock()  # the app's token clock (create_app)
    caller = cache.get(digest, now)
    if caller is None:
        async with store.read() as session:
            caller = await lookup_token(session, token, now)
        if caller is None:
            raise unauthorized()
        cache.put(digest, caller)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]


_members = TeamMembership.__table__
_ROLE = select(_members.c.role).where(
    _members.c.product_id == bindparam("product_id"), _members.c.user_id == bindparam("user_id")
)


def actor_from_role(caller: Caller, product_id: int, role: str | None) -> Actor | None:
    """The caller's standing in a product given its team role there (users) or none."""
    if caller.kind is OwnerKind.USER:
        return Role(role) if role else None
    if caller.product_id != product_id:
        return None
    return Principal.CUSTOMER if caller.kind is OwnerKind.CUSTOMER else Principal.PRODUCT_CLIENT


async def actor_in_product(
    runner: AsyncSession | Runner, caller: Caller, product_id: int
) -> Actor | None:
    """The caller's standing in a product, for ``permissions.check``."""
    role = None
    if caller.kind is OwnerKind.USER:
        role = await runner.scalar(_ROLE, {"product_id": product_id, "user_id": caller.user_id})
    return actor_from_role(caller, product_id, role)
