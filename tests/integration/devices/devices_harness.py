"""In-process harness: the device server on loopback over a real, migrated store (a SQLite
file, or a fresh PostgreSQL database: see ``conftest``).

The device server runs in the test's event loop with real sockets; simulated devices are real
device folders under ``FERMION_HOME`` driven by ``fermion.device.online``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import select

from fermion.cloud import admin
from fermion.cloud.app import create_app
from fermion.cloud.devices.limits import DeviceServerConfig
from fermion.cloud.devices.registry import Recorder
from fermion.cloud.devices.server import DeviceServer
from fermion.cloud.keyops import set_device_key
from fermion.cloud.serverkeys import ensure_server_key
from fermion.cloud.settings import Settings
from fermion.cloud.store import Store, upgrade_async
from fermion.cloud.store.models import (
    Device,
    HandshakeOutcome,
    KeyCandidate,
    OwnerKind,
    ServerKey,
)
from fermion.cloud.tokens import TokenOwner, mint
from fermion.device.boot import boot
from fermion.device.dct import write_server_key_file
from fermion.device.platforms import Platform
from fermion.device.store import SimDevice
from fermion.keys import LoadedKey, load_key
from fermion.keys.serverfile import Transport, encode_server_key_file

# The deadline of one step that should take well under a second (start, stop, a request):
# generous because the machine is shared; it bounds a hang, it asserts no speed.
STEP = 60.0

FAST = DeviceServerConfig(
    port=0,
    block_timeout=2.0,
    hello_timeout=2.0,
    # The simulated devices share the test's event loop: a loop stalled by a busy machine must
    # not look like a silent device (the devices ping every 0.3 s).
    idle_timeout=15.0,
    sweep_interval=0.1,
    key_poll_interval=0.2,
    failure_limit=100_000,
)


async def wait_for(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 30.0
) -> None:
    """Poll ``check`` until true; the timeout only bounds a hung test, it asserts no speed.

    The deadline also covers a check that itself never returns (a store call stuck on a lock).
    """
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout} s: {check}") from None


_owners = itertools.count()


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
        async with asyncio.timeout(STEP), self.store.read() as session:
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
        async with asyncio.timeout(STEP), self.store.write() as session:
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

    async def as_owner(self, device_id: str, method: str, path: str) -> httpx.Response:
        """A REST call on the cloud's app, in process, as the device's owner (a new user)."""
        email = f"owner-{device_id}-{next(_owners)}@example.com"
        async with asyncio.timeout(STEP):  # a request that never returns fails, not hangs
            # No password: argon2 is slow on purpose; the token is minted directly.
            user = await admin.create_user(self.store, email, None)
            async with self.store.write() as session:
                row = await session.get(Device, device_id)
                assert row is not None
                row.owner_user_id = user.id
                minted = await mint(
                    session,
                    TokenOwner(OwnerKind.USER, user_id=user.id),
                    client_name="test",
                    expires_in=3600,
                    actor="test",
                )
            app = create_app(Settings(data_dir=self.home, database_url=self.store.url))
            app.state.store = self.store  # the lifespan is not run in process; share the store
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as c:
                return await c.request(
                    method, path, headers={"Authorization": f"Bearer {minted.access_token}"}
                )

    async def device(self, device_id: str) -> Device | None:
        async with asyncio.timeout(STEP), self.store.read() as session:
            return await session.get(Device, device_id)

    async def outcomes(self) -> list[HandshakeOutcome]:
        await self.server.recorder.flush()
        async with asyncio.timeout(STEP), self.store.read() as session:
            return list(await session.scalars(select(HandshakeOutcome)))

    async def candidates(self, device_id: str) -> list[KeyCandidate]:
        await self.server.recorder.flush()
        async with asyncio.timeout(STEP), self.store.read() as session:
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


async def start_cloud(
    home: Path,
    config: DeviceServerConfig = FAST,
    database_url: str | None = None,
    recorder_linger: float | None = None,
) -> Cloud:
    """The device server over ``database_url`` (an empty database; a SQLite file in ``home``
    when None), migrated as ``fermion serve`` does. ``recorder_linger`` replaces the writer's
    batching delay for tests that flush after every step."""
    home.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite+aiosqlite:///{home / 'fermion.db'}"
    async with asyncio.timeout(STEP):
        await upgrade_async(url)
        store = Store(url)
        await ensure_server_key(store)
        server = DeviceServer(store, config)
        if recorder_linger is not None:
            server.recorder = Recorder(store, linger=recorder_linger)
        await server.start()
    return Cloud(store, server, home)


async def stop_cloud(cloud: Cloud) -> None:
    # Bounded, so a shutdown that never ends fails the test instead of hanging the run.
    async with asyncio.timeout(STEP):
        await cloud.server.stop()
        await cloud.store.close()


@contextlib.contextmanager
def logged_failures() -> Iterator[list[logging.LogRecord]]:
    """What Fermion logged at ERROR (and the stop helper's warning about a task that ignored its
    cancellation) while the block ran.

    The device server outlives a failed store read or write by logging it (see ``Recorder``),
    so a store-specific bug would pass a test that only waits for other facts; the fixtures
    fail on these records instead.
    """
    found: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR or record.name == "fermion.aio":
                found.append(record)

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("fermion")
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def describe(records: list[logging.LogRecord]) -> str:
    return "\n".join(
        f"{r.name}: {r.getMessage()}"
        + (f"\n{logging.Formatter().formatException(r.exc_info)}" if r.exc_info else "")
        for r in records
    )
