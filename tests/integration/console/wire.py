"""What a device does on the wire, as the device server records it in the store.

Until simulated devices connect to the server under test here, these write exactly the facts
the device server writes for a handshake: a refused key (candidate + outcome), the proof that
the device holds the matching private key, and a completed handshake (presence).
"""

from __future__ import annotations

from sqlalchemy import select, update

from fermion.cloud.store.models import (
    CandidateStatus,
    Device,
    HandshakeOutcome,
    KeyCandidate,
    KeyHealth,
    utcnow,
)
from fermion.keys import (
    Algorithm,
    LoadedKey,
    generate_device_key,
    load_key,
    public_key_der,
    public_key_pem,
)
from fermion.protocol.errors import Outcome

from .harness import Cloud, run_async
from .harness import Device as TestDevice

ADDRESS = "127.0.0.1"


def brownout_key() -> LoadedKey:
    """The key a device makes for itself after a brownout erased its key sector."""
    return load_key(public_key_pem(generate_device_key(Algorithm.RSA).public_key()), "brownout")


async def _present(cloud: Cloud, device_id: str, key: LoadedKey, proven: bool) -> None:
    store = cloud.store()
    now = utcnow()
    try:
        async with store.write() as session:
            row = await session.scalar(
                select(KeyCandidate).where(
                    KeyCandidate.device_id == device_id,
                    KeyCandidate.fingerprint == key.fingerprint.hex,
                )
            )
            if row is None:
                session.add(
                    KeyCandidate(
                        device_id=device_id,
                        fingerprint=key.fingerprint.hex,
                        algorithm=key.algorithm.value,
                        der=public_key_der(key.public),
                        first_seen=now,
                        last_seen=now,
                        count=1,
                        remote_address=f"{ADDRESS}:50123",
                        possession_proven=proven,
                        status=CandidateStatus.PENDING,
                    )
                )
            else:
                row.count += 1
                row.last_seen = now
            session.add(
                HandshakeOutcome(
                    device_id=device_id,
                    remote_address=f"{ADDRESS}:50123",
                    outcome=Outcome.KEY_MISMATCH.value,
                    detail='{"count": 1, "reason": "presented key does not match"}',
                    fingerprint=key.fingerprint.hex,
                    at=now,
                )
            )
            await session.execute(
                update(Device)
                .where(Device.id == device_id)
                .values(
                    key_health=KeyHealth.MISMATCH,
                    last_outcome=Outcome.KEY_MISMATCH.value,
                    online=False,
                    last_heard=now,
                )
            )
    finally:
        await store.close()


def present_key(cloud: Cloud, device: TestDevice, key: LoadedKey, *, proven: bool = True) -> None:
    """The device connects with ``key``, the cloud holds another: refused, candidate kept."""
    run_async(_present(cloud, device.id, key, proven))


async def _connected(cloud: Cloud, device_id: str) -> None:
    store = cloud.store()
    now = utcnow()
    try:
        async with store.write() as session:
            await session.execute(
                update(Device)
                .where(Device.id == device_id)
                .values(
                    online=True,
                    last_heard=now,
                    last_handshake_at=now,
                    last_ip_address=ADDRESS,
                    key_health=KeyHealth.OK,
                    last_outcome=Outcome.OK.value,
                )
            )
    finally:
        await store.close()


def reconnect(cloud: Cloud, device: TestDevice) -> None:
    """The device's handshake now succeeds: it is online with a key the cloud holds."""
    run_async(_connected(cloud, device.id))


async def _server_key_refused(cloud: Cloud, address: str) -> None:
    store = cloud.store()
    try:
        async with store.write() as session:
            session.add(
                HandshakeOutcome(
                    device_id=None,
                    remote_address=address,
                    outcome=Outcome.SERVER_KEY_MISMATCH.value,
                    detail='{"count": 1, "reason": "no server key opens the block"}',
                    at=utcnow(),
                )
            )
    finally:
        await store.close()


def server_key_refused(cloud: Cloud, address: str) -> None:
    run_async(_server_key_refused(cloud, address))
