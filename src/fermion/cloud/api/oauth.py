"""``POST /oauth/token``: password, client_credentials and refresh_token grants (form only)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.auth import StoreDep, request_id
from fermion.cloud.api.errors import ApiError
from fermion.cloud.api.fields import body_fields, parse_time, text_field
from fermion.cloud.credentials import hash_token, same_hash, verify_password_async
from fermion.cloud.store import Store
from fermion.cloud.store.models import (
    Customer,
    OAuthClient,
    OwnerKind,
    RefreshToken,
    User,
    utcnow,
)
from fermion.cloud.tokens import MAX_EXPIRES_IN, TokenOwner, mint

router = APIRouter(tags=["oauth"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Simple-auth clients are limited to creating customers; two-legged (server) clients are not.
_LIMITED_SCOPES = {"customers:create"}


def _oauth_error(status: int, code: str, description: str) -> ApiError:
    return ApiError(status, description, code=code)


def _client_credentials(request: Request, fields: dict[str, Any]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _oauth_error(
                400, "invalid_client", "Authorization: malformed Basic credentials"
            ) from None
        client_id, _, secret = decoded.partition(":")
        return client_id or None, secret
    return text_field(fields, "client_id", max_len=200), text_field(
        fields, "client_secret", max_len=500
    )


def _expiry(fields: dict[str, Any]) -> tuple[int | None, datetime | None]:
    raw = text_field(fields, "expires_in", max_len=20)
    expires_in: int | None = None
    if raw is not None:
        try:
            expires_in = int(raw)
        except ValueError:
            expires_in = -1
        if not 0 <= expires_in <= MAX_EXPIRES_IN:
            raise _oauth_error(
                400,
                "invalid_request",
                f"expires_in: must be a whole number of seconds from 0 (never) to {MAX_EXPIRES_IN}",
            )
    raw_at = text_field(fields, "expires_at", max_len=40)
    expires_at: datetime | None = None
    if raw_at is not None:
        # The same cap as expires_in: a far-off expires_at must not make a 10-year-plus token.
        expires_at = parse_time("expires_at", raw_at)
        now = utcnow()
        if not now < expires_at <= now + timedelta(seconds=MAX_EXPIRES_IN):
            raise _oauth_error(
                400,
                "invalid_request",
                "expires_at: must be a future ISO 8601 time with a zone, "
                f"at most {MAX_EXPIRES_IN} seconds (10 years) from now",
            )
    return expires_in, expires_at


async def _product_client(
    session: AsyncSession, client_id: str | None, secret: str | None
) -> OAuthClient | None:
    if not client_id:
        return None
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None:
        await verify_password_async(None, secret or "")  # same cost as a real check
        return None
    return client if await verify_password_async(client.secret_hash, secret or "") else None


@router.post(
    "/oauth/token",
    summary="Create an access token (password, client_credentials or refresh_token grant)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {
                                "type": "string",
                                "enum": ["password", "client_credentials", "refresh_token"],
                            },
                            "username": {"type": "string"},
                            "password": {"type": "string"},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "expires_in": {"type": "integer", "minimum": 0},
                            "expires_at": {"type": "string"},
                            "scope": {"type": "string"},
                            "refresh_token": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def create_token(request: Request, store: StoreDep) -> JSONResponse:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _FORM_TYPES and (ctype or await request.body()):
        raise _oauth_error(
            400, "invalid_request", "body: must be form-encoded (application/x-www-form-urlencoded)"
        )
    limiter = request.app.state.login_limiter
    address = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(address)
    if wait:
        raise ApiError(
            429,
            f"too many failed logins from {address}; try again in {wait} seconds",
            code="too_many_requests",
            retry_after=wait,
        )
    fields = await body_fields(request)
    grant = text_field(fields, "grant_type", max_len=100)
    if grant is None:
        raise _oauth_error(400, "invalid_request", "grant_type: is required")
    rid = request_id(request)
    handler = {
        "password": _password_grant,
        "client_credentials": _client_credentials_grant,
        "refresh_token": _refresh_grant,
    }.get(grant)
    if handler is None:
        raise _oauth_error(
            400,
            "unsupported_grant_type",
            f"grant_type: {grant!r} is not one of password, client_credentials, refresh_token",
        )
    client_id, secret = _client_credentials(request, fields)
    try:
        body = await handler(store, fields, client_id, secret, rid)
    except ApiError as exc:
        if exc.code in ("invalid_grant", "invalid_client"):
            limiter.failed(address)
        raise
    limiter.succeeded(address)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _password_grant(
    store: Store,
    fields: dict[str, Any],
    client_id: str | None,
    secret: str | None,
    rid: str | None,
) -> dict[str, Any]:
    username = text_field(fields, "username", required=True, max_len=254)
    password = text_field(fields, "password", required=True, max_len=1000)
    assert username is not None and password is not None
    expires_in, expires_at = _expiry(fields)
    email = username.strip().lower()
    # Verification (argon2, slow on purpose) happens in a read session so that it never holds
    # the write lock; only the mint below writes.
    async with store.read() as session:
        owner, actor = await _check_login(session, email, password, client_id, secret)
    async with store.write() as session:
        minted = await mint(
            session,
            owner,
            client_name=client_id or "particle",
            expires_in=expires_in,
            expires_at=expires_at,
            actor=actor,
            request_id=rid,
        )
    return minted.response()


async def _check_login(
    session: AsyncSession, email: str, password: str, client_id: str | None, secret: str | None
) -> tuple[TokenOwner, str]:
    # A product client's credentials make this a customer login in that product; any other
    # client id (particle, particle-cli, CLI2, user...) logs in a user, as Particle does.
    client = None
    if client_id and secret:
        client = await session.scalar(
            select(OAuthClient).where(
                OAuthClient.client_id == client_id, OAuthClient.product_id.is_not(None)
            )
        )
        if client is not None and not await verify_password_async(client.secret_hash, secret):
            raise _oauth_error(401, "invalid_client", "client credentials are invalid")
    if client is not None:
        customer = await session.scalar(
            select(Customer).where(
                Customer.product_id == client.product_id, func.lower(Customer.email) == email
            )
        )
        if customer is None or not await verify_password_async(customer.password_hash, password):
            raise _oauth_error(400, "invalid_grant", "User credentials are invalid")
        owner = TokenOwner(
            OwnerKind.CUSTOMER,
            customer_id=customer.id,
            oauth_client_id=client.id,
            product_id=client.product_id,
        )
        actor = f"customer:{customer.email}@product:{client.product_id}"
    else:
        user = await session.scalar(select(User).where(func.lower(User.email) == email))
        if user is None or not await verify_password_async(user.password_hash, password):
            raise _oauth_error(400, "invalid_grant", "User credentials are invalid")
        owner = TokenOwner(OwnerKind.USER, user_id=user.id)
        actor = f"user:{user.email}"
    return owner, actor


async def _client_credentials_grant(
    store: Store,
    fields: dict[str, Any],
    client_id: str | None,
    secret: str | None,
    rid: str | None,
) -> dict[str, Any]:
    async with store.read() as session:
        client = await _product_client(session, client_id, secret)
        if client is None:
            raise _oauth_error(401, "invalid_client", "client credentials are invalid")
        owner, actor = await _client_owner(session, client, fields)
    expires_in, expires_at = _expiry(fields)
    async with store.write() as session:
        minted = await mint(
            session,
            owner,
            client_name=client.client_id,
            expires_in=expires_in,
            expires_at=expires_at,
            actor=actor,
            request_id=rid,
        )
    return minted.response()


async def _client_owner(
    session: AsyncSession, client: OAuthClient, fields: dict[str, Any]
) -> tuple[TokenOwner, str]:
    if client.product_id is None:
        raise _oauth_error(
            400, "invalid_client", f"client {client.client_id} does not belong to a product"
        )
    if client.scope and set(client.scope.split()) <= _LIMITED_SCOPES:
        raise _oauth_error(
            403,
            "access_denied",
            f"client {client.client_id} may only create customers; "
            "use a two-legged (server) client for tokens",
        )
    scope = (text_field(fields, "scope", max_len=300) or "").strip()
    actor = f"client:{client.client_id}@product:{client.product_id}"
    if scope:
        if not scope.startswith("customer="):
            raise _oauth_error(400, "invalid_scope", f"scope: {scope!r} is not customer=<email>")
        email = scope.removeprefix("customer=").strip().lower()
        customer = await session.scalar(
            select(Customer).where(
                Customer.product_id == client.product_id, func.lower(Customer.email) == email
            )
        )
        if customer is None:
            raise _oauth_error(
                400,
                "invalid_scope",
                f"scope: no customer {email!r} in product {client.product_id}",
            )
        owner = TokenOwner(
            OwnerKind.CUSTOMER,
            customer_id=customer.id,
            oauth_client_id=client.id,
            product_id=client.product_id,
        )
    else:
        owner = TokenOwner(
            OwnerKind.CLIENT, oauth_client_id=client.id, product_id=client.product_id
        )
    return owner, actor


async def _refresh_grant(
    store: Store,
    fields: dict[str, Any],
    client_id: str | None,
    secret: str | None,
    rid: str | None,
) -> dict[str, Any]:
    token = text_field(fields, "refresh_token", required=True, max_len=200)
    assert token is not None
    digest = hash_token(token)
    invalid = _oauth_error(400, "invalid_grant", "refresh_token: is invalid, expired or revoked")
    async with store.read() as session:
        row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
        if row is None or not same_hash(row.token_hash, digest) or row.revoked_at is not None:
            raise invalid
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise invalid
        if row.oauth_client_id is not None:
            client = await _product_client(session, client_id, secret)
            if client is None or client.id != row.oauth_client_id:
                raise _oauth_error(401, "invalid_client", "client credentials are invalid")
        elif client_id != row.client_name:
            raise _oauth_error(
                401, "invalid_client", "client_id: must be the client the token was issued to"
            )
    expires_in, expires_at = _expiry(fields)
    owner = TokenOwner(
        OwnerKind(row.owner_kind),
        user_id=row.user_id,
        customer_id=row.customer_id,
        oauth_client_id=row.oauth_client_id,
        product_id=row.product_id,
    )
    owner_id = row.user_id or row.customer_id or row.oauth_client_id
    async with store.write() as session:
        # One use only (checked again under the write lock so two racing uses cannot both win):
        # a refresh token that leaked and was used is worth nothing afterwards.
        used = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if used.rowcount != 1:
            raise invalid
        minted = await mint(
            session,
            owner,
            client_name=row.client_name,
            expires_in=expires_in,
            expires_at=expires_at,
            actor=f"refresh:{row.owner_kind}:{owner_id}",
            request_id=rid,
        )
    return minted.response()
