"""Rotating the cloud's server key: old and new are both accepted until the old one is retired.

``rotate`` makes a new current key and turns the current one into ``previous`` (a previous one
from an unfinished rotation is retired first: at most two keys open device blocks). ``retire``
ends a rotation. Device servers pick the change up within their poll interval. Both changes are
audited in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import select

from fermion.cloud.serverkeys import ensure_server_key, new_current_row
from fermion.cloud.store import Store
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import ServerKey, ServerKeyState
from fermion.errors import FermionError
from fermion.keys import (
    Algorithm,
    generate_server_key,
)


async def server_keys(store: Store) -> list[ServerKey]:
    """Every server key, current first, then previous, then retired (newest first)."""
    await ensure_server_key(store)
    async with store.read() as session:
        rows = list(await session.scalars(select(ServerKey).order_by(ServerKey.id.desc())))
    order = {ServerKeyState.CURRENT: 0, ServerKeyState.PREVIOUS: 1, ServerKeyState.RETIRED: 2}
    return sorted(rows, key=lambda r: order.get(ServerKeyState(r.state), 3))


async def current_key(store: Store, algorithm: Algorithm = Algorithm.RSA) -> ServerKey:
    return await ensure_server_key(store, algorithm)


async def rotate(store: Store, actor: str, algorithm: Algorithm = Algorithm.RSA) -> ServerKey:
    await ensure_server_key(store, algorithm)
    key = generate_server_key(algorithm)  # outside the transaction: it takes a while
    async with store.write() as session:
        rows = list(
            await session.scalars(select(ServerKey).where(ServerKey.algorithm == algorithm.value))
        )
        old_current = next((r for r in rows if r.state == ServerKeyState.CURRENT), None)
        for row in rows:
            if row.state == ServerKeyState.PREVIOUS:
                row.state = ServerKeyState.RETIRED
                record(session, actor, "server_key.retire", before=row.fingerprint)
        if old_current is not None:
            old_current.state = ServerKeyState.PREVIOUS
        new = new_current_row(algorithm, key)
        session.add(new)
        record(
            session,
            actor,
            "server_key.rotate",
            before=old_current.fingerprint if old_current else None,
            after=new.fingerprint,
            detail={"algorithm": algorithm.value},
        )
    return new


async def retire(store: Store, actor: str, algorithm: Algorithm = Algorithm.RSA) -> ServerKey:
    async with store.write() as session:
        previous = await session.scalar(
            select(ServerKey).where(
                ServerKey.algorithm == algorithm.value,
                ServerKey.state == ServerKeyState.PREVIOUS,
            )
        )
        if previous is None:
            raise FermionError(
                f"server key: no {algorithm.value.upper()} rotation in progress "
                "(nothing to retire; run 'fermion server-key rotate' first)"
            )
        previous.state = ServerKeyState.RETIRED
        record(session, actor, "server_key.retire", before=previous.fingerprint)
    return previous
