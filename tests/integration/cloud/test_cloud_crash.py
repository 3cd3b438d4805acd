"""SIGKILL the server in the middle of a burst of key uploads; after a restart every upload that
got a 200 is there with its audit event, and nothing is half-written."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import httpx
from cloud_harness import Cloud, device_pub_pem, new_device_id
from sqlalchemy import select

from fermion.cloud.store import Store
from fermion.cloud.store.models import AuditEvent, Device, DeviceKey
from fermion.keys import load_key

WORKERS = 6
KILL_AFTER = 60  # successful uploads before the kill


def test_sigkill_during_key_uploads(cloud: Cloud) -> None:
    owner = cloud.user()
    product = cloud.product(owner)
    token = cloud.token_for(owner)
    # A pool of keys made up front so that the burst is HTTP, not key generation.
    pems = [device_pub_pem() for _ in range(40)]
    fingerprints = {pem: load_key(pem.encode()).fingerprint.hex for pem in pems}
    shared = [new_device_id() for _ in range(3)]  # several writers on the same devices too
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    enough = threading.Event()
    stop = threading.Event()

    def worker(n: int) -> None:
        i = 0
        with httpx.Client(
            base_url=cloud.base_url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as h:
            while not stop.is_set():
                i += 1
                device = shared[i % len(shared)] if i % 2 else new_device_id()
                pem = pems[(n * 7 + i) % len(pems)]
                try:
                    reply = h.post(
                        f"/v1/provisioning/{device}",
                        data={"publicKey": pem, "product_id": str(product)},
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if reply.status_code == 200:
                    with lock:
                        acknowledged.append((device, fingerprints[pem]))
                        if len(acknowledged) >= KILL_AFTER:
                            enough.set()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    assert enough.wait(timeout=300), "the burst never got going"
    cloud.server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    cloud.server.start()
    assert httpx.get(f"{cloud.base_url}/v1/server-keys").status_code == 200

    async def load(store: Store) -> dict[str, Any]:
        async with store.read() as s:
            return {
                "devices": list(
                    await s.scalars(select(Device).where(Device.product_id == product))
                ),
                "keys": list(await s.scalars(select(DeviceKey))),
                "events": list(
                    await s.scalars(select(AuditEvent).where(AuditEvent.product_id == product))
                ),
            }

    db = cloud.run(load)
    keys_by_device: dict[str, list[DeviceKey]] = defaultdict(list)
    for k in db["keys"]:
        keys_by_device[k.device_id].append(k)
    uploads = {
        (e.device_id, e.after_fingerprint, e.detail["version"])
        for e in db["events"]
        if e.action == "key.upload"
    }
    created = {e.device_id for e in db["events"] if e.action == "device.create"}
    devices = {d.id: d for d in db["devices"]}

    # Every acknowledged upload is stored, with its audit event.
    for device, fp in acknowledged:
        assert any(k.fingerprint == fp for k in keys_by_device[device]), (device, fp)
        assert any(d == device and f == fp for d, f, _ in uploads), (device, fp)
    # Nothing half-written: each key version has exactly its audit event, versions are
    # contiguous, the current pointer is the newest version, every device has its creation.
    for device_id, device in devices.items():
        versions = sorted(keys_by_device[device_id], key=lambda k: k.version)
        assert [k.version for k in versions] == list(range(1, len(versions) + 1))
        assert device.current_key_id == versions[-1].id
        for k in versions:
            assert (device_id, k.fingerprint, k.version) in uploads
        assert device_id in created
    assert " 500 " not in cloud.server.log(), "a racing upload failed with a server error"
    assert len(uploads) == sum(len(v) for d, v in keys_by_device.items() if d in devices)
