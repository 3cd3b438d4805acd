"""What the device server reads from and writes to the store.

Reads (a device's current key, its candidates, the server keys) happen on the handshake path;
the device server caches the current key per device and drops the cache entry when the key
changes. Writes (presence, outcomes, candidates, proof of possession) are facts the device
server learns while it talks to devices; they are queued and written in batches by
``Recorder`` so that a burst of handshakes costs one transaction, not one each.

Outcomes are counters, not a log: one ``handshake_outcomes`` row per (device, outcome), or per
(address, outcome) when the device id is unknowable. ``at`` is the last time it happened and
``detail`` holds JSON ``{"count", "first_at", "reason", "address"}``. A flood of bad
connections from one address therefore changes counters, never the size of the store.

Connections that name no registered device (no id: the block did not open or never came; or an
id nobody registered, ``unknown_device``) are the ones a stranger can make from as many
addresses, or with as many made-up ids, as he likes. Their rows are capped
(``max_unidentified``, the least recently seen folded first): a folded row's count is added to
one row per outcome with neither device nor address (``detail.addresses`` says how many rows
it took in), so the totals stay and the table stays bounded. A registered device's rows are
never folded: they are its history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.aio import cancel_and_wait
from fermion.cloud.keyhistory import EarlierVersion, earlier_versions
from fermion.cloud.store import Store
from fermion.cloud.store.models import (
    CandidateStatus,
    Device,
    DeviceKey,
    HandshakeOutcome,
    KeyCandidate,
    KeyHealth,
    ServerKey,
    ServerKeyState,
    utcnow,
)
from fermion.protocol.errors import Outcome

log = logging.getLogger("fermion.devices")

T = TypeVar("T")


@dataclass(frozen=True)
class DeviceRecord:
    """A registered device as the handshake needs it."""

    device_id: str
    key_der: bytes | None  # current key, SPKI DER; None when the cloud holds none
    key_fingerprint: str | None  # SHA-256 hex
    key_id: int | None


async def load_device(store: Store, device_id: str) -> DeviceRecord | None:
    async with store.read() as session:
        row = (
            await session.execute(
                select(Device.id, DeviceKey.id, DeviceKey.der, DeviceKey.fingerprint)
                .outerjoin(DeviceKey, DeviceKey.id == Device.current_key_id)
                .where(Device.id == device_id)
            )
        ).first()
    if row is None:
        return None
    return DeviceRecord(row[0], row[2], row[3], row[1])


async def candidate_status(store: Store, device_id: str, fingerprint_hex: str) -> str | None:
    async with store.read() as session:
        return await session.scalar(
            select(KeyCandidate.status).where(
                KeyCandidate.device_id == device_id, KeyCandidate.fingerprint == fingerprint_hex
            )
        )


async def earlier_key_version(
    store: Store, device_id: str, fingerprint_hex: str
) -> EarlierVersion | None:
    """The earlier version of the device's key that a presented key matches (a restored key)."""
    async with store.read() as session:
        found = await earlier_versions(session, device_id, [fingerprint_hex])
    return found.get(fingerprint_hex)


@dataclass
class KeyVersionCursor:
    """How far a key poll got: the highest key version id seen, and the lower ids it passed
    over, with when.

    Ids are handed out at insert but become visible at commit, which PostgreSQL does in any
    order: an id passed over may still appear, so it is asked for again for ``GAP_PATIENCE``
    seconds (an insert that rolled back never appears).
    """

    last: int
    gaps: dict[int, float] = field(default_factory=dict)


GAP_PATIENCE = 120.0
MAX_GAPS = 1000


async def key_versions_since(store: Store, cursor: KeyVersionCursor) -> set[str]:
    """Devices whose key changed since ``cursor`` (key versions are only ever inserted); moves
    the cursor on."""
    now = time.monotonic()
    cursor.gaps = {i: t for i, t in cursor.gaps.items() if now - t < GAP_PATIENCE}
    newer = DeviceKey.id > cursor.last
    async with store.read() as session:
        rows = (
            await session.execute(
                select(DeviceKey.id, DeviceKey.device_id).where(
                    or_(newer, DeviceKey.id.in_(cursor.gaps)) if cursor.gaps else newer
                )
            )
        ).all()
    if not rows:
        return set()
    ids = {r[0] for r in rows}
    for i in ids:
        cursor.gaps.pop(i, None)
    top = max(ids)
    for i in range(cursor.last + 1, top):
        if i not in ids:
            cursor.gaps[i] = now
    if len(cursor.gaps) > MAX_GAPS:
        cursor.gaps = dict(sorted(cursor.gaps.items())[-MAX_GAPS:])
    cursor.last = max(cursor.last, top)
    return {r[1] for r in rows}


async def last_key_version_id(store: Store) -> int:
    async with store.read() as session:
        return (await session.scalar(select(func.max(DeviceKey.id)))) or 0


async def handshake_server_keys(store: Store) -> list[tuple[int, str, str]]:
    """RSA server keys a device may hold: (id, state, private PEM), current first."""
    async with store.read() as session:
        rows = (
            await session.execute(
                select(ServerKey.id, ServerKey.state, ServerKey.private_pem)
                .where(
                    ServerKey.algorithm == "rsa",
                    ServerKey.state.in_([ServerKeyState.CURRENT, ServerKeyState.PREVIOUS]),
                )
                .order_by(ServerKey.id.desc())
            )
        ).all()
    current = [r for r in rows if r[1] == ServerKeyState.CURRENT]
    previous = [r for r in rows if r[1] == ServerKeyState.PREVIOUS]
    return [(r[0], r[1], r[2]) for r in current + previous]


async def mark_all_offline(store: Store) -> None:
    """At start: nobody is connected to a server that was not running."""
    async with store.write() as session:
        await session.execute(update(Device).where(Device.online.is_(True)).values(online=False))


# ---------------------------------------------------------------------------------------------
# Writes, batched


@dataclass(frozen=True)
class OutcomeFact:
    outcome: Outcome
    device_id: str | None
    address: str | None
    reason: str
    fingerprint: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Presence:
    device_id: str
    online: bool
    address: str | None
    handshake: bool  # True when this is a fresh handshake (sets last_handshake_at)
    at: datetime


@dataclass(frozen=True)
class CandidateSeen:
    device_id: str
    fingerprint: str
    algorithm: str
    der: bytes
    address: str | None
    at: datetime


@dataclass(frozen=True)
class PossessionProven:
    device_id: str
    fingerprint: str


Fact = OutcomeFact | Presence | CandidateSeen | PossessionProven


class Recorder:
    """Queues facts and writes them in order, many per transaction.

    ``flush()`` waits until everything queued so far is written (tests, shutdown).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 2000,
        linger: float = 0.25,
        max_unidentified: int = 1000,
        max_pending_candidates: int = 5,
    ) -> None:
        self._store = store
        self._max_unidentified = max_unidentified
        self._max_pending = max_pending_candidates
        self._queue: asyncio.Queue[Fact | asyncio.Future[None]] = asyncio.Queue()
        self._max_batch = max_batch
        self._linger = linger
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="device-recorder")

    def put(self, fact: Fact) -> None:
        self._queue.put_nowait(fact)

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is written (or the writer is gone)."""
        if self._task is None or self._task.done():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(done)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.shield(done)

    async def stop(self) -> None:
        if self._task is None:
            return
        await self.flush(timeout=10.0)
        await cancel_and_wait([self._task])
        self._task = None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            if self._linger:
                await asyncio.sleep(self._linger)
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            facts = [f for f in batch if not isinstance(f, asyncio.Future)]
            if facts:
                try:
                    async with self._store.write() as session:
                        await write_facts(
                            session,
                            facts,
                            max_unidentified=self._max_unidentified,
                            max_pending_candidates=self._max_pending,
                        )
                except Exception:
                    # The device server must outlive a store hiccup; the facts are lost, the
                    # metrics still counted them.
                    log.exception("could not record %d device facts", len(facts))
            for f in batch:
                if isinstance(f, asyncio.Future) and not f.done():
                    f.set_result(None)
            # Not kept alive while waiting for the next fact: a batch can be thousands of facts.
            del batch, facts, first


async def write_facts(
    session: AsyncSession,
    facts: Iterable[Fact],
    *,
    max_unidentified: int = 1000,
    max_pending_candidates: int = 5,
) -> None:
    """Write a batch: facts about the same device or address are merged first, and rows are
    read and updated in bulk, so a batch costs a few statements whatever its size."""
    outcomes: dict[tuple[str | None, str | None, Outcome], tuple[OutcomeFact, int]] = {}
    presence: dict[str, Presence] = {}
    # Per device: its last fresh handshake, and every address it handshook from in the batch.
    handshakes: dict[str, Presence] = {}
    handshake_addresses: dict[str, list[str | None]] = {}
    keys: list[CandidateSeen | PossessionProven] = []
    device_outcome: dict[str, Outcome] = {}
    for fact in facts:
        if isinstance(fact, OutcomeFact):
            key = (fact.device_id, None if fact.device_id else fact.address, fact.outcome)
            count = outcomes[key][1] + 1 if key in outcomes else 1
            outcomes[key] = (fact, count)
            if fact.device_id is not None:
                device_outcome[fact.device_id] = fact.outcome
        elif isinstance(fact, Presence):
            presence[fact.device_id] = fact
            if fact.handshake:
                handshakes[fact.device_id] = fact
                handshake_addresses.setdefault(fact.device_id, []).append(fact.address)
        else:
            keys.append(fact)
    if outcomes and await _write_outcomes(session, outcomes):
        await fold_unidentified(session, max_unidentified)
    rows: list[dict[str, object]] = []
    for device_id in presence.keys() | device_outcome.keys():
        values: dict[str, object] = {"id": device_id}
        seen = presence.get(device_id)
        if seen is not None:
            values.update(online=seen.online, last_heard=seen.at)
        handshake = handshakes.get(device_id)
        if handshake is not None:
            values.update(last_handshake_at=handshake.at, last_ip_address=handshake.address)
        outcome = device_outcome.get(device_id)
        if outcome is not None:
            values["last_outcome"] = outcome.value
            if outcome is Outcome.OK:
                values["key_health"] = KeyHealth.OK
            elif outcome is Outcome.KEY_MISMATCH:
                values["key_health"] = KeyHealth.MISMATCH
        rows.append(values)
    existing: dict[str, str | None] = {}
    if rows:
        for ids in in_lists(r["id"] for r in rows):
            found = await session.execute(
                select(Device.id, Device.known_addresses).where(Device.id.in_(ids))
            )
            existing.update((device_id, known) for device_id, known in found)
        for r in rows:
            device_id = str(r["id"])
            if device_id in handshakes and device_id in existing:
                known = load_addresses(existing[device_id])
                for address in handshake_addresses[device_id]:
                    known = remember(known, address)
                r["known_addresses"] = json.dumps(known)
        # Group by the set of columns: one executemany per shape.
        shapes: dict[tuple[str, ...], list[dict[str, object]]] = {}
        for r in rows:
            if r["id"] in existing:
                shapes.setdefault(tuple(sorted(r)), []).append(r)
        for shape, batch in shapes.items():
            await _update_by_id(session, Device.__table__, shape, batch)
    # Presented keys after the addresses are remembered: a key presented from where the device
    # handshook in the same batch is not flagged as coming from somewhere new.
    for fact in keys:
        if isinstance(fact, CandidateSeen):
            await _write_candidate(session, fact, max_pending_candidates)
        else:
            await session.execute(
                update(KeyCandidate)
                .where(
                    KeyCandidate.device_id == fact.device_id,
                    KeyCandidate.fingerprint == fact.fingerprint,
                )
                .values(possession_proven=True)
            )
    # Last: it compares when a key was last presented with when the device handshook, so it
    # must see the keys of this batch too.
    await _supersede(session, [h for d, h in handshakes.items() if d in existing])


async def _write_outcomes(
    session: AsyncSession,
    outcomes: dict[tuple[str | None, str | None, Outcome], tuple[OutcomeFact, int]],
) -> bool:
    """Add the counts; True when a row of an unidentified connection was inserted."""
    # Columns, not ORM objects, and bulk statements by primary key: this runs for every
    # handshake, and the unit of work costs more per row than the handshake's own Python.
    table = HandshakeOutcome.__table__
    columns = (table.c.id, table.c.device_id, table.c.remote_address, table.c.outcome)
    device_ids = {k[0] for k in outcomes if k[0] is not None}
    addresses = {k[1] for k in outcomes if k[0] is None}
    found: dict[tuple[str | None, str | None, str], tuple[int, str | None]] = {}
    queries = [table.c.device_id.in_(ids) for ids in in_lists(device_ids)]
    queries += [
        table.c.device_id.is_(None) & table.c.remote_address.in_(chunk)
        for chunk in in_lists(addresses)
    ]
    for where in queries:
        rows = await session.execute(
            select(*columns, table.c.detail).where(where).order_by(table.c.id)
        )
        for row_id, device_id, address, outcome, detail in rows:
            key = (device_id, None if device_id else address, outcome)
            found.setdefault(key, (row_id, detail))
    inserts: list[dict[str, object]] = []
    updates: dict[bool, list[dict[str, object]]] = {}
    for (device_id, address, outcome), (fact, count) in outcomes.items():
        at = fact.at or utcnow()
        existing = found.get((device_id, address, outcome.value))
        if existing is None:
            detail = {"count": count, "first_at": _iso(at), "reason": fact.reason}
            inserts.append(
                {
                    "device_id": device_id,
                    "remote_address": fact.address,
                    "outcome": outcome.value,
                    "detail": json.dumps(detail),
                    "fingerprint": fact.fingerprint,
                    "at": at,
                }
            )
            continue
        row_id, text = existing
        old = parse_outcome_detail(text)
        old["count"] = int(old.get("count", 1)) + count  # type: ignore[call-overload]
        old["reason"] = fact.reason
        values: dict[str, object] = {
            "id": row_id,
            "detail": json.dumps(old),
            "at": at,
            "remote_address": fact.address,
        }
        if fact.fingerprint is not None:
            values["fingerprint"] = fact.fingerprint
        updates.setdefault(fact.fingerprint is not None, []).append(values)
    if inserts:
        await session.execute(insert(HandshakeOutcome), inserts)
    for batch in updates.values():
        await _update_by_id(session, table, tuple(sorted(batch[0])), batch)
    return any(
        r["device_id"] is None or r["outcome"] == Outcome.UNKNOWN_DEVICE.value for r in inserts
    )


_outcomes = HandshakeOutcome.__table__
# Rows a stranger can create at will: no device id, or an id nobody registered. Rows with no
# address either are the per-outcome totals that folded rows are added to.
_UNIDENTIFIED = _outcomes.c.remote_address.is_not(None) & (
    _outcomes.c.device_id.is_(None) | (_outcomes.c.outcome == Outcome.UNKNOWN_DEVICE.value)
)


async def fold_unidentified(session: AsyncSession, keep: int) -> int:
    """Fold the least recently seen unidentified rows beyond ``keep`` into the per-outcome
    totals; how many rows were folded."""
    table = _outcomes
    total = await session.scalar(select(func.count()).select_from(table).where(_UNIDENTIFIED))
    excess = (total or 0) - keep
    if excess <= 0:
        return 0
    rows = (
        await session.execute(
            select(table.c.id, table.c.outcome, table.c.detail, table.c.at)
            .where(_UNIDENTIFIED)
            .order_by(table.c.at, table.c.id)
            .limit(excess)
        )
    ).all()
    folded: dict[str, tuple[int, int, datetime, datetime]] = {}  # count, rows, first, last
    for _row_id, outcome, text, at in rows:
        detail = parse_outcome_detail(text)
        count = detail.get("count", 1)
        count = count if isinstance(count, int) and count > 0 else 1
        first = _parse_iso(detail.get("first_at")) or at
        seen = folded.get(outcome)
        if seen is None:
            folded[outcome] = (count, 1, first, at)
        else:
            folded[outcome] = (seen[0] + count, seen[1] + 1, min(seen[2], first), max(seen[3], at))
    totals = {
        outcome: (row_id, detail, at)
        for row_id, outcome, detail, at in await session.execute(
            select(table.c.id, table.c.outcome, table.c.detail, table.c.at).where(
                table.c.device_id.is_(None),
                table.c.remote_address.is_(None),
                table.c.outcome.in_(list(folded)),
            )
        )
    }
    for outcome, (count, taken, first, last) in folded.items():
        existing = totals.get(outcome)
        if existing is None:
            detail: dict[str, object] = {
                "count": count,
                "addresses": taken,
                "first_at": _iso(first),
                "reason": "unidentified connections beyond the rows kept, added up",
            }
            await session.execute(
                insert(table).values(
                    device_id=None,
                    remote_address=None,
                    outcome=outcome,
                    detail=json.dumps(detail),
                    at=last,
                )
            )
            continue
        row_id, text, at = existing
        detail = parse_outcome_detail(text)
        for name, add in (("count", count), ("addresses", taken)):
            old = detail.get(name, 0)
            detail[name] = (old if isinstance(old, int) else 0) + add
        await session.execute(
            update(table)
            .where(table.c.id == row_id)
            .values(detail=json.dumps(detail), at=max(at, last) if at else last)
        )
    ids = [r[0] for r in rows]
    for chunk in in_lists(ids):
        await session.execute(delete(table).where(table.c.id.in_(chunk)))
    return len(ids)


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


async def _update_by_id(
    session: AsyncSession, table: Any, shape: tuple[str, ...], rows: list[dict[str, object]]
) -> None:
    """One executemany of ``UPDATE table SET <shape> WHERE id = :id`` (Core: no ORM bookkeeping
    per row). Every row has exactly the keys in ``shape``, ``id`` among them."""
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({name: bindparam(name) for name in shape if name != "id"})
    )
    await session.execute(stmt, [{**r, "_id": r["id"]} for r in rows])


# Lengths of the lists given to ``IN``: SQLAlchemy writes one placeholder per value, so every
# distinct length is another statement for SQLite's (or asyncpg's) statement cache to prepare
# and keep; a handful of lengths keeps that cache small and hit.
_IN_LENGTHS = (8, 32, 128, 512, 2048)


def in_lists(values: Iterable[T]) -> list[list[T]]:
    """``values`` as lists of one of the ``_IN_LENGTHS`` (the last value repeated to fill)."""
    items = list(values)
    lists = []
    for start in range(0, len(items), _IN_LENGTHS[-1]):
        chunk = items[start : start + _IN_LENGTHS[-1]]
        length = next(n for n in _IN_LENGTHS if n >= len(chunk))
        lists.append(chunk + [chunk[-1]] * (length - len(chunk)))
    return lists


def parse_outcome_detail(text: str | None) -> dict[str, object]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


# How many addresses a device, or a presented key, remembers: enough for a device that moves
# between a few networks, few enough that a row stays small.
ADDRESSES_KEPT = 8


def load_addresses(text: str | None) -> list[str]:
    try:
        data = json.loads(text or "[]")
    except ValueError:
        return []
    return [a for a in data if isinstance(a, str)] if isinstance(data, list) else []


def remember(addresses: list[str], address: str | None) -> list[str]:
    """``address`` appended as the most recent, each address once, the oldest dropped."""
    if address is None:
        return addresses
    kept = [a for a in addresses if a != address] + [address]
    return kept[-ADDRESSES_KEPT:]


async def _supersede(session: AsyncSession, handshakes: list[Presence]) -> None:
    """The device handshook with its current key: keys presented for it before then are no
    longer waiting for a decision (the device is fine; whoever presented them is not it, or the
    device was repaired). Marked, not deleted: the history stays."""
    if not handshakes:
        return
    table = KeyCandidate.__table__
    at = {p.device_id: p for p in handshakes}
    updates: list[dict[str, object]] = []
    for ids in in_lists(at):
        pending = await session.execute(
            select(table.c.id, table.c.device_id, table.c.last_seen).where(
                table.c.device_id.in_(ids), table.c.status == CandidateStatus.PENDING.value
            )
        )
        for row_id, device_id, last_seen in pending:
            seen = at[device_id]
            if last_seen is not None and last_seen > seen.at:
                continue  # presented again after this handshake: still an open question
            updates.append(
                {
                    "id": row_id,
                    "status": CandidateStatus.SUPERSEDED.value,
                    "decided_by": "device: handshake with its current key"
                    + (f" from {seen.address}" if seen.address else ""),
                    "decided_at": seen.at,
                }
            )
    if updates:
        await _update_by_id(session, table, tuple(sorted(updates[0])), updates)


def _rank(new_address: bool | None, last_seen: datetime) -> tuple[bool, datetime]:
    """Which presented keys stay when a device has too many: a key presented from an address
    the device used outranks any from elsewhere, then the most recently presented."""
    return (not new_address, last_seen)


async def _make_room(session: AsyncSession, fact: CandidateSeen, fresh: bool, limit: int) -> bool:
    """Room for one more pending key of the device: True when there was room or the lowest
    ranked pending key was dropped for it, False when the new one is the lowest ranked."""
    pending = list(
        await session.scalars(
            select(KeyCandidate).where(
                KeyCandidate.device_id == fact.device_id,
                KeyCandidate.status == CandidateStatus.PENDING.value,
            )
        )
    )
    if len(pending) < limit:
        return True
    worst = min(pending, key=lambda c: _rank(c.new_address, c.last_seen))
    if _rank(fresh, fact.at) <= _rank(worst.new_address, worst.last_seen):
        return False
    log.info(
        "device %s: dropping presented key %s (from %s) for a newer one: %d pending at most",
        fact.device_id,
        worst.fingerprint[:16],
        worst.remote_address,
        limit,
    )
    await session.delete(worst)
    await session.flush()
    await _count_dropped(session, fact)
    return True


async def _count_dropped(session: AsyncSession, fact: CandidateSeen, count: int = 1) -> None:
    await session.execute(
        update(Device)
        .where(Device.id == fact.device_id)
        .values(candidates_dropped=Device.candidates_dropped + count)
    )


# Superseded presented keys kept per device as history: every new key an outsider presents
# after the device came back would otherwise be one more row for good.
SUPERSEDED_KEPT = 20


async def _prune_superseded(session: AsyncSession, fact: CandidateSeen) -> None:
    table = KeyCandidate.__table__
    old = list(
        await session.scalars(
            select(table.c.id)
            .where(
                table.c.device_id == fact.device_id,
                table.c.status == CandidateStatus.SUPERSEDED.value,
            )
            .order_by(table.c.decided_at.desc(), table.c.id.desc())
            .offset(SUPERSEDED_KEPT - 1)  # room for the one about to be added, once superseded
        )
    )
    if old:
        await session.execute(delete(table).where(table.c.id.in_(old)))
        await _count_dropped(session, fact, len(old))


async def _write_candidate(session: AsyncSession, fact: CandidateSeen, max_pending: int) -> None:
    """Record a presented key, at most ``max_pending`` waiting per device (``_rank`` says which
    stay; every one not kept is counted in ``devices.candidates_dropped``)."""
    device = (
        await session.execute(
            select(Device.known_addresses, Device.last_ip_address).where(
                Device.id == fact.device_id
            )
        )
    ).first()
    if device is None:
        return  # deleted since it was looked up: there is nothing to add
    known_text, last_address = device
    # Before migration 0004 nothing was remembered: the last address stands for the device's.
    known = load_addresses(known_text) if known_text is not None else [last_address or ""]
    fresh = fact.address is not None and fact.address not in known
    row = await session.scalar(
        select(KeyCandidate).where(
            KeyCandidate.device_id == fact.device_id, KeyCandidate.fingerprint == fact.fingerprint
        )
    )
    if row is None:
        if not await _make_room(session, fact, fresh, max_pending):
            await _count_dropped(session, fact)
            return
        await _prune_superseded(session, fact)
        try:
            # In a savepoint: another device server (a worker, a node) may be recording the
            # same key in an overlapping transaction; on PostgreSQL the later insert fails on
            # the unique key, which must cost this row (counted below), not the whole batch.
            async with session.begin_nested():
                session.add(
                    KeyCandidate(
                        device_id=fact.device_id,
                        fingerprint=fact.fingerprint,
                        algorithm=fact.algorithm,
                        der=fact.der,
                        first_seen=fact.at,
                        last_seen=fact.at,
                        count=1,
                        remote_address=fact.address,
                        addresses=json.dumps(remember([], fact.address)),
                        new_address=fresh,
                        possession_proven=False,
                        status=CandidateStatus.PENDING,
                    )
                )
            return
        except IntegrityError:
            row = await session.scalar(
                select(KeyCandidate).where(
                    KeyCandidate.device_id == fact.device_id,
                    KeyCandidate.fingerprint == fact.fingerprint,
                )
            )
            if row is None:
                raise
    if row.status == CandidateStatus.SUPERSEDED:
        # Presented again after the device was fine: a new question, to be proven again.
        if not await _make_room(session, fact, fresh, max_pending):
            await _count_dropped(session, fact)
            return
        row.status = CandidateStatus.PENDING
        row.decided_by = None
        row.decided_at = None
        row.possession_proven = False
    row.count += 1
    row.last_seen = fact.at
    row.remote_address = fact.address
    row.addresses = json.dumps(remember(load_addresses(row.addresses), fact.address))
    row.new_address = bool(row.new_address) or fresh


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
