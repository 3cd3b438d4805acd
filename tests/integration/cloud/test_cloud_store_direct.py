"""A statement run on the driver (``store.direct``) stores and returns exactly what the same
statement does through a session: the bind and result processors it takes from the column types
(public type APIs) are the ones SQLAlchemy's own execution applies (UTC datetimes, booleans,
binary, JSON text)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloud_harness import BACKENDS, fresh_database
from sqlalchemy import bindparam, insert, select

from fermion.cloud.store import Store, upgrade_async
from fermion.cloud.store.direct import Runner, SessionRunner
from fermion.cloud.store.models import Device, DeviceKey
from fermion.cloud.store.queries import device_and_role

pytestmark = pytest.mark.integration

_keys = DeviceKey.__table__
_INSERT_KEY = (
    insert(_keys)
    .values({c.key: bindparam(c.key, type_=c.type) for c in _keys.c if c.key != "id"})
    .returning(_keys.c.id, _keys.c.created_at)
)
_KEY_BY_ID = select(_keys).where(_keys.c.id == bindparam("id"))


async def _roundtrip(url: str) -> list[tuple[object, ...]]:
    await upgrade_async(url)
    store = Store(url)
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC) + timedelta(hours=1)
    try:
        device_id = secrets.token_hex(12)
        async with store.write() as session:
            session.add(Device(id=device_id, platform_id=6, notes="ñ"))
        seen: list[tuple[object, ...]] = []

        async def write_and_read(runner: Runner, version: int) -> None:
            params = {
                "device_id": device_id,
                "version": version,
                "algorithm": "rsa",
                "der": b"\x00\xff" * 8,
                "fingerprint": f"{version:064x}",
                "source": "import",
                "created_by": "test",
                "created_at": at,
            }
            row = await runner.first(_INSERT_KEY, params)
            assert row is not None
            assert row[1] == at  # RETURNING through the column's result processor
            got = await runner.first(_KEY_BY_ID, {"id": row[0]})
            assert got is not None
            seen.append(tuple(got)[1:])  # all but the id

        async with store.direct_write() as runner:
            await write_and_read(runner, 1)
        async with store.write() as session:
            await write_and_read(SessionRunner(session), 2)
        async with store.direct_read() as runner:
            direct = await device_and_role(runner, device_id, None)
        async with store.read() as session:
            orm = await device_and_role(SessionRunner(session), device_id, None)
        assert direct is not None and orm is not None
        columns = [c.key for c in Device.__table__.c]
        seen.append(tuple(getattr(direct[0].device, c) for c in columns))
        seen.append(tuple(getattr(orm[0].device, c) for c in columns))
        return seen
    finally:
        await store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_and_session_store_and_read_alike(backend: str, tmp_path: Path) -> None:
    url, drop = fresh_database(backend, tmp_path)
    try:
        direct_key, session_key, direct_device, orm_device = asyncio.run(_roundtrip(url))
    finally:
        drop()

    # The same values but the version and fingerprint, which the test chose differently.
    def same(key: tuple[object, ...]) -> tuple[object, ...]:
        return key[0], key[2], key[3], *key[5:]

    assert same(direct_key) == same(session_key)
    assert direct_device == orm_device
    created_at = direct_key[list(_keys.c.keys()).index("created_at") - 1]
    assert isinstance(created_at, datetime) and created_at.tzinfo is not None
