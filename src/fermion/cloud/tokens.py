"""Minting access and refresh tokens, each with its audit event in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.credentials import hash_token, new_token
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import AccessToken, OwnerKind, RefreshToken, utcnow

DEFAULT_EXPIRES_IN = 7_776_000  # 90 days, Particle's default
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600
REFRESH_LIFETIME = timedelta(days=14)  # Particle's

# What time it is for tokens: the app's clock (``create_app(clock=...)``), minted with and
# judged by, so a test moves time instead of sleeping through a token's life (as the protocol's
# connection takes a ``clock``).
Clock = Callable[[], datetime]


def expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a token (access or refresh) with this expiry is dead at ``now`` (None: never)."""
    return expires_at is not None and expires_at <= now


@dataclass(frozen=True)
class TokenOwner:
    kind: OwnerKind
    user_id: int | None = None
    customer_id: int | None = None
    oauth_client_id: int | None = None
    product_id: int | None = None

    def columns(self, client_name: str) -> dict[str, Any]:
        """The owner columns an access token and its refresh token both carry."""
        return {
            "owner_kind": self.kind.value,
            "user_id": self.user_id,
            "customer_id": self.customer_id,
            "oauth_client_id": self.oauth_client_id,
            "product_id": self.product_id,
            "client_name": client_name[:100],
        }


@dataclass(frozen=True)
class Minted:
    access_token: str
    refresh_token: str
    expires_in: int  # 0 = never
    expires_at: datetime | None
    token_id: int

    def response(self) -> dict[str, Any]:
        """The body Particle's ``/oauth/token`` returns."""
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


async def mint(
    session: AsyncSession,
    owner: TokenOwner,
    *,
    client_name: str,
    expires_in: int | None,
    expires_at: datetime | None = None,
    actor: str,
    request_id: str | None = None,
    scopes: list[str] | None = None,
    with_refresh: bool = True,
    now: datetime | None = None,
) -> Minted:
    """A new token for ``owner``; ``expires_in`` None means the default, 0 means never.
    ``now``: the time of minting by the caller's clock (default: the wall clock)."""
    now = now or utcnow()
    if expires_at is None:
        seconds = DEFAULT_EXPIRES_IN if expires_in is None else expires_in
        expires_at = now + timedelta(seconds=seconds) if seconds else None
    else:
        seconds = max(0, int((expires_at - now).total_seconds()))
    token = new_token()
    row = AccessToken(
        token_hash=hash_token(token),
        **owner.columns(client_name),
        scopes=scopes or [],
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    refresh = new_token() if with_refresh else ""
    if with_refresh:
        session.add(
            RefreshToken(
                token_hash=hash_token(refresh),
                access_token_id=row.id,
                **owner.columns(client_name),
                created_at=now,
                expires_at=now + REFRESH_LIFETIME,
            )
        )
    record(
        session,
        actor,
        "token.create",
        product_id=owner.product_id,
        request_id=request_id,
        detail={
            "token_id": row.id,
            "owner_kind": owner.kind.value,
            "client": client_name[:100],
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return Minted(token, refresh, seconds, expires_at, row.id)


class _Revocations:
    """A count of revocations in this process; caches of live tokens compare against it."""

    generation = 0

    @classmethod
    def bump(cls, *_: object) -> None:
        cls.generation += 1


def revocation_generation() -> int:
    return _Revocations.generation


async def revoke(
    session: AsyncSession,
    *conditions: Any,
    actor: str,
    request_id: str | None = None,
    product_id: int | None = None,
) -> int:
    """Revoke the live access tokens matching ``conditions``; audited; returns how many."""
    result = await session.execute(
        update(AccessToken)
        .where(AccessToken.revoked_at.is_(None), *conditions)
        .values(revoked_at=utcnow())
        .returning(AccessToken.id)
    )
    ids = [r[0] for r in result]
    if ids:
        # Now, and again once committed, so no request caches the token in between.
        _Revocations.bump()
        event.listen(session.sync_session, "after_commit", _Revocations.bump, once=True)
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.access_token_id.in_(ids), RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        record(
            session,
            actor,
            "token.revoke",
            product_id=product_id,
            request_id=request_id,
            detail={"token_ids": ids[:100], "count": len(ids)},
        )
    return len(ids)
