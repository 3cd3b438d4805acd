"""The cloud's own key pairs: made on first start, kept current/previous through a rotation."""

from __future__ import annotations

from sqlalchemy import Text, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store import Store
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import ServerKey, ServerKeyState
from fermion.cloud.store.models.cloud import SEALED_PREFIX
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


async def seal_plaintext_keys(store: Store) -> int:
    """Seal the private keys stored as plain PEM (by a version before sealing), and check that
    the key file opens the sealed ones: a wrong or missing key file fails the start with an
    error naming it (``SecretBoxError``) instead of failing the first handshake."""
    raw = type_coerce(ServerKey.private_pem, Text)  # the stored text, not opened
    async with store.write() as session:
        rows = (await session.execute(select(ServerKey.id, raw))).all()
        plain = [(key_id, value) for key_id, value in rows if not value.startswith(SEALED_PREFIX)]
        for key_id, value in plain:
            await session.execute(
                update(ServerKey).where(ServerKey.id == key_id).values(private_pem=value)
            )
        if plain:
            record(session, "system", "server_key.seal", detail={"count": len(plain)})
    async with store.read() as session:
        (await session.scalars(select(ServerKey.private_pem))).all()  # opens each, or raises
    return len(plain)


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
