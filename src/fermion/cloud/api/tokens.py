"""``/v1/access_tokens``: inspect and revoke tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import ColumnElement, or_, select

from fermion.cloud.api.auth import Caller, CallerDep, StoreDep, lookup_token, request_id
from fermion.cloud.api.errors import not_found
from fermion.cloud.store import Store
from fermion.cloud.store.models import AccessToken, OwnerKind, utcnow
from fermion.cloud.tokens import revoke

router = APIRouter(tags=["tokens"])


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@router.get("/v1/access_tokens/current", summary="The token used for this request")
async def current_token(caller: CallerDep) -> dict[str, Any]:
    return {
        "expires_at": _iso(caller.expires_at),
        "client": caller.client_name,
        "client_id": caller.client_name,
        "scopes": list(caller.scopes),
        "orgs": [],
    }


@router.delete("/v1/access_tokens/current", summary="Revoke the token used for this request")
async def delete_current(request: Request, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    return await _revoke_own(store, caller, request)


async def _revoke_own(store: Store, token: Caller, request: Request) -> dict[str, Any]:
    """Revoke the token ``token`` stands for, in its owner's name."""
    async with store.write() as session:
        await revoke(
            session,
            AccessToken.id == token.token_id,
            actor=token.label,
            request_id=request_id(request),
            product_id=token.product_id,
        )
    return {"ok": True}


def _owned_by(caller: Caller) -> ColumnElement[bool]:
    """The tokens of the caller's account: a user's, a customer's, or a client's own."""
    if caller.kind is OwnerKind.USER:
        return AccessToken.user_id == caller.user_id
    if caller.kind is OwnerKind.CUSTOMER:
        return AccessToken.customer_id == caller.customer_id
    return (AccessToken.oauth_client_id == caller.oauth_client_id) & (
        AccessToken.owner_kind == OwnerKind.CLIENT.value
    )


@router.get(
    "/v1/access_tokens",
    summary="The live tokens of the caller's account (never their secrets)",
    description=(
        "Particle's (older) list answers `[{token, expires_at, client}]` to HTTP Basic "
        "username:password. Fermion keeps only a hash of each token, so it cannot return "
        "`token`: each entry has `id`, `client`, `scopes`, `created_at`, `expires_at` (null: "
        "never) and `current` (the token of this request). It takes the caller's bearer token."
    ),
)
async def list_tokens(caller: CallerDep, store: StoreDep) -> list[dict[str, Any]]:
    now = utcnow()
    async with store.read() as session:
        rows = await session.scalars(
            select(AccessToken)
            .where(
                _owned_by(caller),
                AccessToken.revoked_at.is_(None),
                or_(AccessToken.expires_at.is_(None), AccessToken.expires_at > now),
            )
            .order_by(AccessToken.id.desc())
        )
        return [
            {
                "id": row.id,
                "client": row.client_name,
                "scopes": list(row.scopes or []),
                "created_at": _iso(row.created_at),
                "expires_at": _iso(row.expires_at),
                "current": row.id == caller.token_id,
            }
            for row in rows
        ]


@router.delete("/v1/access_tokens", summary="Revoke every live token of the caller's account")
async def delete_all(request: Request, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.write() as session:
        await revoke(
            session,
            _owned_by(caller),
            actor=caller.label,
            request_id=request_id(request),
            product_id=caller.product_id,
        )
    return {"ok": True}


@router.delete(
    "/v1/access_tokens/{token}",
    summary="Revoke one token",
    description=(
        "Needs no other credentials: knowing a token is enough to revoke it (particle-cli's "
        "`token revoke` sends none)."
    ),
)
async def delete_one(token: str, request: Request, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        target = await lookup_token(session, token)
    if target is None:
        raise not_found("access token not found, expired or already revoked")
    return await _revoke_own(store, target, request)
