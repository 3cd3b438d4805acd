"""The device server's writes when several device servers (worker processes, nodes) share the
store: their transactions overlap, which SQLite serialises and PostgreSQL does not."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from devices_harness import STEP, wait_for
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.devices.registry import (
    CandidateSeen,
    Fact,
    KeyVersionCursor,
    Presence,
    key_versions_since,
    last_key_version_id,
    write_facts,
)
from fermion.cloud.keyops import set_device_key
from fermion.cloud.store import Store, upgrade_async
from fermion.cloud.store.models import Device, KeyCandidate, utcnow
from fermion.keys import LoadedKey, generate_device_key
from harness import fresh_database


async def record(store: Store, facts: list[Fact]) -> None:
    async with store.write() as session:
        await write_facts(session, facts)


async def waiting_on_a_lock(store: Store) -> bool:
    """Whether another transaction now waits on one of this database's row or index locks."""
    if store.is_sqlite:
        return True  # the second writer waits for the file lock; nothing to observe
    async with store.read() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def test_two_device_servers_recording_the_same_candidate_at_once(database_url: str) -> None:
    # A device presents an unknown key to two workers in turn; both record the candidate in
    # overlapping batches. The second batch must count it, not fail on the unique key and lose
    # every other fact in it (here: the device going offline).
    await upgrade_async(database_url)
    first_server, second_server = Store(database_url), Store(database_url)
    try:
        device_id = secrets.token_hex(12)
        async with first_server.write() as session:
            session.add(Device(id=device_id, platform_id=6))
        seen = CandidateSeen(device_id, "ab" * 32, "rsa", b"\x30\x00", "127.0.0.1", utcnow())
        gone = Presence(device_id, False, "127.0.0.1", False, utcnow())
        async with asyncio.timeout(STEP):
            async with first_server.write() as session:
                await write_facts(session, [seen])  # inserted, not yet committed
                second = asyncio.create_task(record(second_server, [seen, gone]))
                await wait_for(lambda: waiting_on_a_lock(first_server))
            await second
        async with first_server.read() as session:
            rows = list(await session.scalars(select(KeyCandidate)))
            heard = await session.scalar(select(func.count()).where(Device.last_heard.is_not(None)))
        assert [(r.device_id, r.count) for r in rows] == [(device_id, 2)]
        assert heard == 1
    finally:
        await first_server.close()
        await second_server.close()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    url, drop = fresh_database("postgres", tmp_path)
    try:
        yield url
    finally:
        drop()


async def new_key(session: AsyncSession, device_id: str) -> None:
    device = await session.get(Device, device_id)
    if device is None:
        device = Device(id=device_id, platform_id=6)
        session.add(device)
        await session.flush()
    key = LoadedKey(generate_device_key().public_key())
    await set_device_key(
        session,
        device,
        key,
        source="provisioning",
        actor="test",
        action="key.provision",
        request_id=None,
        current_fingerprint=None,
    )


async def test_another_workers_key_change_is_seen_whatever_the_commit_order(
    postgres_url: str,
) -> None:
    # Worker processes learn of a key change made elsewhere by polling the store for key
    # versions with a higher id than the last they saw (keywatch). Two uploads overlap: the one
    # that took the lower id commits last. (PostgreSQL only: SQLite runs one writer at a time.)
    database_url = postgres_url
    await upgrade_async(database_url)
    store = Store(database_url)
    try:
        slow, fast = secrets.token_hex(12), secrets.token_hex(12)
        async with asyncio.timeout(STEP):
            cursor = KeyVersionCursor(await last_key_version_id(store))
            async with store.write() as session:
                await new_key(session, slow)  # takes the lower id, commits last
                other = Store(database_url)
                try:
                    async with other.write() as session2:
                        await new_key(session2, fast)
                finally:
                    await other.close()
                assert await key_versions_since(store, cursor) == {fast}
            assert await key_versions_since(store, cursor) == {slow}
            assert await key_versions_since(store, cursor) == set()
    finally:
        await store.close()
