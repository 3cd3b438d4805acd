"""``POST /oauth/token``: password, client_credentials and refresh_token grants (form only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.auth import StoreDep, request_id
from fermion.cloud.api.client_auth import client_credentials, product_client
from fermion.cloud.api.errors import ApiError
from fermion.cloud.api.fields import body_fields, parse_time, text_field
from fermion.cloud.api.ratelimit import Attempt, LoginRefused
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
from fermion.cloud.tokens import MAX_EXPIRES_IN, TokenOwner, expired, mint

router = APIRouter(tags=["oauth"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Simple-auth clients are limited to creating customers; two-legged (server) clients are not.
_LIMITED_SCOPES = {"customers:create"}


def _oauth_error(status: int, code: str, description: str) -> ApiError:
    return ApiError(status, description, code=code)


def _expiry(fields: dict[str, Any], now: datetime) -> tuple[int | None, datetime | None]:
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
        if not now < expires_at <= now + timedelta(seconds=MAX_EXPIRES_IN):
            raise _oauth_error(
                400,
                "invalid_request",
                "expires_at: must be a future ISO 8601 time with a zone, "
                f"at most {MAX_EXPIRES_IN} seconds (10 years) from now",
            )
    return expires_in, expires_at


def _too_many(refused: LoginRefused) -> ApiError:
    return ApiError(429, str(refused), code="too_many_requests", retry_after=refused.retry_after)


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
    try:
        attempt = limiter.begin(address)  # counted from now, before any argon2 check
    except LoginRefused as refused:
        raise _too_many(refused) from None
    outcome: bool | None = None  # None: nothing was checked, the attempt gives its place back
    try:
        body = await _grant(request, store, attempt)
        outcome = True
    except LoginRefused as refused:
        raise _too_many(refused) from None
    except ApiError as exc:
        if exc.code in ("invalid_grant", "invalid_client"):
            outcome = False
        raise
    finally:
        attempt.finish(outcome)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _grant(request: Request, store: Store, attempt: Attempt) -> dict[str, Any]:
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
    client_id, secret = client_credentials(request, fields)
    # One instant per request, by the app's token clock: what the grant checks and mints with.
    return await handler(
        _TokenRequest(store, fields, client_id, secret, rid, attempt, request.app.state.clock())
    )


@dataclass(frozen=True)
class _TokenRequest:
    """One ``POST /oauth/token``, as every grant reads it."""

    store: Store
    fields: dict[str, Any]
    client_id: str | None
    secret: str | None
    request_id: str | None
    attempt: Attempt
    now: datetime  # one instant per request, by the app's token clock

    async def mint(
        self, session: AsyncSession, owner: TokenOwner, client_name: str, actor: str
    ) -> dict[str, Any]:
        """The token (and refresh token) the grant decided on, with the expiry asked for."""
        expires_in, expires_at = _expiry(self.fields, self.now)
        minted = await mint(
            session,
            owner,
            client_name=client_name,
            expires_in=expires_in,
            expires_at=expires_at,
            actor=actor,
            request_id=self.request_id,
            now=self.now,
        )
        return minted.response()


async def _password_grant(ask: _TokenRequest) -> dict[str, Any]:
    store, fields, client_id, secret = ask.store, ask.fields, ask.client_id, ask.secret
    username = text_field(fields, "username", required=True, max_len=254)
    password = text_field(fields, "password", required=True, max_len=1000)
    assert username is not None and password is not None
    _expiry(fields, ask.now)  # a bad expiry is refused before the (slow) password check
    email = username.strip().lower()
    # Read what the check needs, give the connection back, verify (argon2, slow on purpose,
    # holding neither a connection nor the write lock), then a short transaction to mint.
    async with store.read() as session:
        login = await _find_login(session, email, client_id, secret)
    owner, actor = await _check_login(login, password, secret, ask.attempt)
    async with store.write() as session:
        return await ask.mint(session, owner, client_id or "particle", actor)


@dataclass(frozen=True)
class _Login:
    """What a password login needs from the store, read before any argon2 check."""

    account: str  # the login limiter's key, named whether or not the account exists
    password_hash: str | None  # None: no such account (or no password); checked all the same
    owner: TokenOwner | None
    actor: str
    client_secret_hash: str | None = None  # a customer login checks its product client first


async def _find_login(
    session: AsyncSession, email: str, client_id: str | None, secret: str | None
) -> _Login:
    # A product client's credentials make this a customer login in that product; any other
    # client id (particle, particle-cli, CLI2, user...) logs in a user, as Particle does.
    client = None
    if client_id and secret:
        client = await session.scalar(
            select(OAuthClient).where(
                OAuthClient.client_id == client_id, OAuthClient.product_id.is_not(None)
            )
        )
    if client is not None:
        customer = await session.scalar(
            select(Customer).where(
                Customer.product_id == client.product_id, func.lower(Customer.email) == email
            )
        )
        return _Login(
            account=f"customer:{client.product_id}:{email}",
            password_hash=customer.password_hash if customer else None,
            owner=TokenOwner(
                OwnerKind.CUSTOMER,
                customer_id=customer.id,
                oauth_client_id=client.id,
                product_id=client.product_id,
            )
            if customer
            else None,
            actor=f"customer:{customer.email if customer else email}@product:{client.product_id}",
            client_secret_hash=client.secret_hash,
        )
    user = await session.scalar(select(User).where(func.lower(User.email) == email))
    return _Login(
        account=f"user:{email}",
        password_hash=user.password_hash if user else None,
        owner=TokenOwner(OwnerKind.USER, user_id=user.id) if user else None,
        actor=f"user:{user.email if user else email}",
    )


async def _check_login(
    login: _Login, password: str, secret: str | None, attempt: Attempt
) -> tuple[TokenOwner, str]:
    """The token owner when the secrets match. The same verifications whether or not the
    account exists: an unknown one is verified against the dummy hash, so neither the time
    nor the work tells them apart (issue #10, item 5)."""
    # Client secrets are generated (160 bits) and not guessable: they are counted against the
    # address only, so that nobody can block a product's logins by failing its client.
    if login.client_secret_hash is not None and not await verify_password_async(
        login.client_secret_hash, secret or ""
    ):
        raise _oauth_error(401, "invalid_client", "client credentials are invalid")
    attempt.account(login.account)
    ok = await verify_password_async(login.password_hash, password)
    if not ok or login.owner is None:
        raise _oauth_error(400, "invalid_grant", "User credentials are invalid")
    return login.owner, login.actor


async def _client_credentials_grant(ask: _TokenRequest) -> dict[str, Any]:
    store, fields, client_id, secret = ask.store, ask.fields, ask.client_id, ask.secret
    async with store.read() as session:
        client = await product_client(session, client_id, secret)
        if client is None:
            raise _oauth_error(401, "invalid_client", "client credentials are invalid")
        owner, actor = await _client_owner(session, client, fields)
    async with store.write() as session:
        return await ask.mint(session, owner, client.client_id, actor)


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


async def _refresh_grant(ask: _TokenRequest) -> dict[str, Any]:
    store, fields, client_id, secret = ask.store, ask.fields, ask.client_id, ask.secret
    token = text_field(fields, "refresh_token", required=True, max_len=200)
    assert token is not None
    digest = hash_token(token)
    invalid = _oauth_error(400, "invalid_grant", "refresh_token: is invalid, expired or revoked")
    async with store.read() as session:
        row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
        if row is None or not same_hash(row.token_hash, digest) or row.revoked_at is not None:
            raise invalid
        if expired(row.expires_at, ask.now):
            raise invalid
        if row.oauth_client_id is not None:
            client = await product_client(session, client_id, secret)
            if client is None or client.id != row.oauth_client_id:
                raise _oauth_error(401, "invalid_client", "client credentials are invalid")
        elif client_id != row.client_name:
            raise _oauth_error(
                401, "invalid_client", "client_id: must be the client the token was issued to"
            )
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
        return await ask.mint(
            session, owner, row.client_name, f"refresh:{row.owner_kind}:{owner_id}"
        )
