"""What a device does on the wire, recorded with the device server's own store writes.

Until simulated devices connect to the server under test here, these hand the device server's
``write_facts`` exactly the facts it records for a handshake: a refused key (a candidate and a
``key_mismatch`` outcome), the proof that the device holds the matching private key, a
completed handshake (presence), and a block no server key opens (by address only).
"""

from __future__ import annotations

from fermion.cloud.devices.registry import (
    CandidateSeen,
    Fact,
    OutcomeFact,
    PossessionProven,
    Presence,
    write_facts,
)
from fermion.cloud.store.models import utcnow
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


def record(cloud: Cloud, *facts: Fact) -> None:
    async def go() -> None:
        store = cloud.store()
        try:
            async with store.write() as session:
                await write_facts(session, facts)
        finally:
            await store.close()

    run_async(go())


def present_key(cloud: Cloud, device: TestDevice, key: LoadedKey, *, proven: bool = True) -> None:
    """The device connects with ``key`` while the cloud holds another: refused, key kept."""
    now = utcnow()
    address = f"{ADDRESS}:50123"
    facts: list[Fact] = [
        CandidateSeen(
            device.id,
            key.fingerprint.hex,
            key.algorithm.value,
            public_key_der(key.public),
            address,
            now,
        ),
        OutcomeFact(
            Outcome.KEY_MISMATCH,
            device.id,
            address,
            "presented key does not match",
            key.fingerprint.hex,
            now,
        ),
        Presence(device.id, online=False, address=address, handshake=False, at=now),
    ]
    if proven:
        facts.insert(1, PossessionProven(device.id, key.fingerprint.hex))
    record(cloud, *facts)


def reconnect(
    cloud: Cloud, device: TestDevice, address: str = ADDRESS, key: LoadedKey | None = None
) -> None:
    """The device's handshake now succeeds (with ``key``, default the one it was provisioned
    with): it is online with a key the cloud holds."""
    presented = (key or device.key).fingerprint.hex
    record(
        cloud,
        OutcomeFact(Outcome.OK, device.id, address, "connected", presented),
        Presence(device.id, online=True, address=address, handshake=True, at=utcnow()),
    )


def server_key_refused(cloud: Cloud, address: str) -> None:
    record(
        cloud,
        OutcomeFact(Outcome.SERVER_KEY_MISMATCH, None, address, "no server key opens the block"),
    )
