"""The cloud's own key pairs: made on first start, kept current/previous through a rotation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store import Store
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import ServerKey, ServerKeyState
from fermion.keys import (
    Algorithm,
    PrivateKey,
    fingerprint,
    generate_server_key,
    private_key_pem,
    public_key_der,
)


def new_current_row(algorithm: Algorithm, key: PrivateKey) -> ServerKey:
    """The store row of a freshly made server key, as the current key of its algorithm."""
    return ServerKey(
        algorithm=algorithm.value,
        private_pem=private_key_pem(key).decode(),
        public_der=public_key_der(key.public_key()),
        fingerprint=fingerprint(key).hex,
        state=ServerKeyState.CURRENT,
    )


async def current_keys(session: AsyncSession) -> list[ServerKey]:
    """Keys devices may meet: current first, then previous (accepted during a rotation)."""
    rows = await session.scalars(
        select(ServerKey)
        .where(ServerKey.state.in_([ServerKeyState.CURRENT, ServerKeyState.PREVIOUS]))
        .order_by(ServerKey.state, ServerKey.id.desc())
    )
    return list(rows)


async def ensure_server_key(store: Store, algorithm: Algorithm = Algorithm.RSA) -> ServerKey:
    """The current key of ``algorithm``, generated and stored (audited) when there is none."""
    async with store.read() as session:
        existing = await session.scalar(
            select(ServerKey).where(
                ServerKey.algorithm == algorithm.value, ServerKey.state == ServerKeyState.CURRENT
            )
        )
    if existing is not None:
        return existing
    key = generate_server_key(algorithm)  # outside the transaction: it takes a while
    try:
        async with store.write() as session:
            # Another node may have made one meanwhile; keep theirs.
            existing = await session.scalar(
                select(ServerKey).where(
                    ServerKey.algorithm == algorithm.value,
                    ServerKey.state == ServerKeyState.CURRENT,
                )
            )
            if existing is not None:
                return existing
            row = new_current_row(algorithm, key)
            session.add(row)
            record(
                session,
                "system",
                "server_key.create",
                after=row.fingerprint,
                detail={"algorithm": algorithm.value},
            )
    except IntegrityError:
        # Another process committed its key between our check and our insert (the database
        # allows one current key per algorithm): theirs is the one.
        return await ensure_server_key(store, algorithm)
    return row
