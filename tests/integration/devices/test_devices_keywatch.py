"""A key change is announced to the device servers of the process once it commits.

Both ways a key version is written: through an ORM session (``set_device_key``: approvals,
restores, the CLI) and on the driver connection (``store.direct_write``: key uploads). A
rolled-back change is never announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest

from fermion.cloud.devices import keywatch
from fermion.cloud.keyops import NewKey, append_key_version, set_device_key
from fermion.cloud.store import Store, upgrade_async
from fermion.cloud.store.models import Device
from fermion.keys import LoadedKey, generate_device_key


class Boom(Exception):
    pass


async def _announced(store: Store, write: str, fail: bool) -> list[set[str]]:
    heard: list[set[str]] = []
    unsubscribe = keywatch.subscribe(asyncio.get_running_loop(), heard.append)
    device_id = secrets.token_hex(12)
    key = generate_device_key()
    try:
        async with store.write() as session:
            session.add(Device(id=device_id, platform_id=6))
        with pytest.raises(Boom) if fail else contextlib.nullcontext():
            if write == "session":
                async with store.write() as session:
                    device = await session.get(Device, device_id)
                    assert device is not None
                    await set_device_key(
                        session,
                        device,
                        LoadedKey(key.public_key()),
                        source="provisioning",
                        actor="test",
                        action="key.provision",
                        request_id=None,
                        current_fingerprint=None,
                    )
                    if fail:
                        raise Boom
            else:
                async with store.direct_write() as runner:
                    await append_key_version(
                        runner,
                        device_id,
                        None,
                        NewKey.of(LoadedKey(key.public_key())),
                        source="provisioning",
                        actor="test",
                        action="key.provision",
                        request_id=None,
                        current_fingerprint=None,
                    )
                    if fail:
                        raise Boom
        for _ in range(5):  # listeners are called soon, on the loop
            await asyncio.sleep(0)
        return [h for h in heard if device_id in h]
    finally:
        unsubscribe()


@pytest.mark.parametrize("write", ["session", "direct"])
@pytest.mark.parametrize("fail", [False, True], ids=["committed", "rolled-back"])
async def test_a_key_change_is_announced_once_committed(
    database_url: str, write: str, fail: bool
) -> None:
    await upgrade_async(database_url)
    store = Store(database_url)
    try:
        announced = await _announced(store, write, fail)
    finally:
        await store.close()
    assert len(announced) == (0 if fail else 1), announced
