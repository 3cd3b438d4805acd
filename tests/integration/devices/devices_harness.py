"""In-process harness: the device server on loopback over a real, migrated SQLite file.

The device server runs in the test's event loop with real sockets; simulated devices are real
device folders under ``FERMION_HOME`` driven by ``fermion.device.online``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import select

from fermion.cloud.devices.limits import DeviceServerConfig
from fermion.cloud.devices.server import DeviceServer
from fermion.cloud.keyops import set_device_key
from fermion.cloud.serverkeys import ensure_server_key
from fermion.cloud.store import Store, upgrade_async
from fermion.cloud.store.models import Device, HandshakeOutcome, KeyCandidate, ServerKey
from fermion.device.boot import boot
from fermion.device.dct import write_server_key_file
from fermion.device.platforms import Platform
from fermion.device.store import SimDevice
from fermion.keys import LoadedKey, load_key
from fermion.keys.serverfile import Transport, encode_server_key_file

FAST = DeviceServerConfig(
    port=0,
    block_timeout=2.0,
    hello_timeout=2.0,
    idle_timeout=5.0,
    sweep_interval=0.1,
    key_poll_interval=0.2,
    failure_limit=100_000,
)


async def wait_for(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 30.0
) -> None:
    """Poll ``check`` until true; the timeout only bounds a hung test, it asserts no speed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(0.05)


@dataclass
class Cloud:
    store: Store
    server: DeviceServer
    home: Path

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    async def server_private_key(self) -> rsa.RSAPrivateKey:
        async with self.store.read() as session:
            row = await session.scalar(select(ServerKey).where(ServerKey.state == "current"))
        assert row is not None
        key = load_pem_private_key(row.private_pem.encode(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    async def server_key_file(self) -> bytes:
        key = await self.server_private_key()
        return encode_server_key_file(key.public_key(), "127.0.0.1", self.port, Transport.TCP)

    async def new_device(self, register: bool = True) -> SimDevice:
        """A Photon pointed at this cloud (as ``keys server --host --port`` leaves it)."""
        device = SimDevice.create(Platform.PHOTON, self.home)
        image = device.load_image()
        write_server_key_file(image, Transport.TCP, await self.server_key_file())
        device.save_image(image)
        boot(device)
        if register:
            await self.register(device)
        return device

    async def register(self, device: SimDevice, key: LoadedKey | None = None) -> None:
        key = key or device_public(device)
        async with self.store.write() as session:
            row = await session.get(Device, device.id)
            if row is None:
                row = Device(id=device.id, platform_id=device.platform.id)
                session.add(row)
                await session.flush()
            await set_device_key(
                session,
                row,
                key,
                source="provisioning",
                actor="test",
                action="key.provision",
                request_id=None,
                current_fingerprint=None,
            )

    async def device(self, device_id: str) -> Device | None:
        async with self.store.read() as session:
            return await session.get(Device, device_id)

    async def outcomes(self) -> list[HandshakeOutcome]:
        await self.server.recorder.flush()
        async with self.store.read() as session:
            return list(await session.scalars(select(HandshakeOutcome)))

    async def candidates(self, device_id: str) -> list[KeyCandidate]:
        await self.server.recorder.flush()
        async with self.store.read() as session:
            return list(
                await session.scalars(
                    select(KeyCandidate).where(KeyCandidate.device_id == device_id)
                )
            )


def device_public(device: SimDevice) -> LoadedKey:
    from fermion.device.dct import read_private_key_slot

    slot = read_private_key_slot(device.load_image(), Transport.TCP)
    loaded = load_key(slot, "device key")
    return LoadedKey(loaded.public)


async def start_cloud(home: Path, config: DeviceServerConfig = FAST) -> Cloud:
    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{home / 'fermion.db'}"
    await upgrade_async(url)
    store = Store(url)
    await ensure_server_key(store)
    server = DeviceServer(store, config)
    await server.start()
    return Cloud(store, server, home)


async def stop_cloud(cloud: Cloud) -> None:
    await cloud.server.stop()
    await cloud.store.close()
