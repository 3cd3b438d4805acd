"""Concurrent key uploads of one process share a transaction on SQLite (group commit): one that
fails undoes only itself, and nothing is announced for an upload that did not commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

from cloud_harness import Cloud, device_pub_pem, new_device_id
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from fermion.cloud.keyops import KeyVersion, NewKey, append_key_version
from fermion.cloud.store import Store
from fermion.cloud.store.direct import Runner
from fermion.cloud.store.models import AuditEvent, Device, DeviceKey
from fermion.keys import load_key


def _devices(cloud: Cloud, n: int) -> tuple[str, int, list[str]]:
    owner = cloud.user()
    product = cloud.product(owner)
    token = cloud.token_for(owner)
    ids = [new_device_id() for _ in range(n)]
    for device_id in ids:
        assert cloud.provision(token, device_id, product_id=product).status_code == 200
    return token, product, ids


def test_concurrent_uploads_one_bad_one_rolls_back_alone(cloud: Cloud) -> None:
    _, product, ids = _devices(cloud, 5)
    bad = ids[2]
    keys = {d: NewKey.of(load_key(device_pub_pem().encode())) for d in ids}
    announced: list[str] = []

    async def go(store: Store) -> tuple[list[object], list[str]]:
        statements: list[str] = []
        if store.is_sqlite:
            # Which transactions the uploads ran in, as SQLite saw them.
            store._writer().set_trace_callback(statements.append)

        def upload(device_id: str) -> Awaitable[KeyVersion | None]:
            async def work(tx: Runner) -> KeyVersion | None:
                new = await append_key_version(
                    tx,
                    device_id,
                    product,
                    keys[device_id],
                    source="provisioning",
                    actor="test",
                    action="key.upload",
                    request_id=f"group-{device_id}",
                    current_fingerprint=None,
                )
                tx.after_commit(lambda: announced.append(device_id))
                if device_id == bad:
                    # Its key version and audit event are written; then a duplicate device id.
                    await tx.execute(
                        insert(Device.__table__).values(
                            id=device_id, transport="tcp", key_health="unknown"
                        ),
                        {},
                    )
                return new

            return store.grouped_write(work)

        results = await asyncio.gather(*(upload(d) for d in ids), return_exceptions=True)
        return results, statements

    results, statements = cloud.run(go)
    for device_id, result in zip(ids, results, strict=True):
        if device_id == bad:
            assert isinstance(result, IntegrityError)
        else:
            assert isinstance(result, KeyVersion) and result.version == 2
    assert sorted(announced) == sorted(d for d in ids if d != bad)
    if cloud.server.database_url.startswith(
        "sqlite"
    ):  # SQLite: all five in one transaction, one savepoint each
        assert sum(s.startswith("BEGIN IMMEDIATE") for s in statements) == 1
        assert sum(s.startswith("COMMIT") for s in statements) == 1
        assert sum(s.startswith("SAVEPOINT") for s in statements) == 5

    async def check(store: Store) -> dict[str, tuple[str | None, int, int]]:
        out = {}
        async with store.read() as s:
            for device_id in ids:
                current = await s.scalar(
                    select(DeviceKey.fingerprint)
                    .join(Device, Device.current_key_id == DeviceKey.id)
                    .where(Device.id == device_id)
                )
                versions = await s.scalar(
                    select(func.count()).where(DeviceKey.device_id == device_id)
                )
                audits = await s.scalar(
                    select(func.count()).where(AuditEvent.request_id == f"group-{device_id}")
                )
                out[device_id] = (current, versions, audits)
        return out

    found = cloud.run(check)
    for device_id in ids:
        current, versions, audits = found[device_id]
        if device_id == bad:
            assert current != keys[device_id].fingerprint
            assert (versions, audits) == (1, 0)
        else:
            assert (current, versions, audits) == (keys[device_id].fingerprint, 2, 1)


def test_concurrent_http_uploads_with_a_refused_one(cloud: Cloud) -> None:
    token, product, ids = _devices(cloud, 8)
    stranger = cloud.token_for(cloud.user())
    pems = {d: device_pub_pem() for d in ids}
    refused = ids[3]

    def send(device_id: str) -> int:
        who = stranger if device_id == refused else token
        return cloud.provision(who, device_id, pems[device_id], product_id=product).status_code

    with ThreadPoolExecutor(len(ids)) as pool:
        codes = dict(zip(ids, pool.map(send, ids), strict=True))
    assert codes.pop(refused) == 403
    assert set(codes.values()) == {200}

    async def current(store: Store) -> dict[str, str | None]:
        async with store.read() as s:
            rows = await s.execute(
                select(Device.id, DeviceKey.fingerprint)
                .join(DeviceKey, Device.current_key_id == DeviceKey.id)
                .where(Device.id.in_(ids))
            )
            return {device_id: fingerprint for device_id, fingerprint in rows}

    found = cloud.run(current)
    for device_id in ids:
        sent = load_key(pems[device_id].encode()).fingerprint.hex
        assert (found[device_id] == sent) == (device_id != refused)
