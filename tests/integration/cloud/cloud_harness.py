"""Test harness: a real ``fermion serve`` on loopback, over SQLite and over PostgreSQL.

Each test module gets its own server and its own database (a fresh SQLite file, or a fresh
PostgreSQL database) so that parallel helpers and modules never see each other's data. Every
test that uses ``cloud`` runs once per backend.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select, update

from fermion.cloud import admin
from fermion.cloud.store import Store
from fermion.cloud.store.models import Device, KeyCandidate, OwnerKind, User
from fermion.cloud.tokens import TokenOwner, mint
from fermion.keys import Algorithm, generate_device_key, load_key, public_key_der, public_key_pem
from fermion.protocol import NEED_DATA, coap
from fermion.protocol.connection import Connected, DeviceConnection

PG_ENV = "FERMION_TEST_POSTGRES_URL"
PASSWORD = "correct-horse-battery"
T = TypeVar("T")
HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_device_id() -> str:
    return secrets.token_hex(12)


def device_pub_pem(algorithm: Algorithm = Algorithm.RSA) -> str:
    return public_key_pem(generate_device_key(algorithm).public_key()).decode()


def pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("FERMION_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{PG_ENV} is not set but FERMION_REQUIRE_POSTGRES=1")
    return url or None


async def _pg_exec(admin_url: str, sql: str) -> None:
    import asyncpg

    # Bounded (connect is, by default): a CREATE or DROP DATABASE stuck behind a lock fails
    # the test, or warns in cleanup, instead of hanging the run.
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(sql, timeout=60)
    finally:
        await conn.close(timeout=10)


def fresh_database(kind: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A URL of an empty database of ``kind``, and how to drop it afterwards."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'fermion.db'}", lambda: None
    admin_url = pg_admin_url()
    if admin_url is None:
        pytest.skip(f"{PG_ENV} not set")
    name = f"fermion_test_{secrets.token_hex(6)}"
    asyncio.run(_pg_exec(admin_url, f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"

    def drop() -> None:
        # Cleanup only: a database left behind (an autovacuum worker still attached, which a
        # role without pg_signal_backend may not end) costs disk, not correctness.
        try:
            asyncio.run(_pg_exec(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)

    return url, drop


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


class Server:
    """One ``fermion serve`` subprocess."""

    def __init__(self, database_url: str, data_dir: Path, extra_args: list[str] | None = None):
        self.database_url = database_url
        self.data_dir = data_dir
        self.extra_args = extra_args or []
        self.log_path = data_dir / "serve.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "FERMION_DATABASE_URL": self.database_url}
        env.pop("FERMION_HOME", None)
        for _attempt in range(3):
            self.port = free_port()
            log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fermion.cli.main",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    # On for tests: several check the log for " 500 " (a person's shell has it
                    # off by default).
                    "--access-log",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            log.close()
            if self._wait_ready():
                return
            self.stop()
        raise AssertionError(f"fermion serve did not start:\n{self.log()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.base_url}/v1/server-keys", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cloud:
    """A running cloud plus shortcuts to populate it the way an operator would."""

    server: Server

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def run(self, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        async def go() -> T:
            store = Store(self.server.database_url)
            try:
                return await op(store, *args)
            finally:
                await store.close()

        return asyncio.run(go())

    # --- people and products -------------------------------------------------------------

    def user(self, email: str | None = None, password: str | None = None) -> str:
        """A new user; without a password unless one is given (argon2 is slow on purpose,
        and only the login tests need to pay for it)."""
        email = email or f"user-{secrets.token_hex(4)}@example.com"
        self.run(admin.create_user, email, password)
        return email

    def token_for(self, email: str) -> str:
        """A token for an existing user, minted the way /oauth/token mints one."""

        async def mint_one(store: Store) -> str:
            async with store.write() as session:
                user_id = await session.scalar(select(User.id).where(User.email == email))
                assert user_id is not None, email
                minted = await mint(
                    session,
                    TokenOwner(OwnerKind.USER, user_id=user_id),
                    client_name="particle",
                    expires_in=None,
                    actor=f"user:{email}",
                )
            return minted.access_token

        return self.run(mint_one)

    def login(self, email: str, password: str = PASSWORD, **extra: str) -> str:
        reply = httpx.post(
            f"{self.base_url}/oauth/token",
            data={
                "grant_type": "password",
                "username": email,
                "password": password,
                "client_id": "particle",
                "client_secret": "particle",
                **extra,
            },
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]

    def user_token(self) -> tuple[str, str]:
        email = self.user()
        return email, self.token_for(email)

    def product(self, owner_email: str, platform: str = "photon") -> int:
        product = self.run(admin.create_product, f"P {secrets.token_hex(3)}", owner_email, platform)
        return product.id

    def member(self, product_id: int, role: str) -> tuple[str, str]:
        """A new user with ``role`` in the product (a product has one owner: see ``product``)."""
        assert role != "owner", "the owner is the user the product was created for"
        email = self.user()
        self.run(admin.set_member_role, str(product_id), email, role)
        return email, self.token_for(email)

    def two_legged_client(self, product_id: int) -> tuple[str, str]:
        return self.run(admin.create_client, str(product_id), "server", "server")

    def customer(
        self, product_id: int, email: str | None = None, password: str | None = None
    ) -> str:
        email = email or f"customer-{secrets.token_hex(4)}@example.com"
        self.run(admin.create_customer, str(product_id), email, password)
        return email

    def customer_token(self, client: tuple[str, str], email: str) -> str:
        reply = httpx.post(
            f"{self.base_url}/oauth/token",
            auth=client,
            data={"grant_type": "client_credentials", "scope": f"customer={email}"},
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]

    def product_token(self, client: tuple[str, str]) -> str:
        reply = httpx.post(
            f"{self.base_url}/oauth/token", auth=client, data={"grant_type": "client_credentials"}
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]

    def add_candidate(self, device_id: str, pem: str, proven: bool = True) -> int:
        """Record a key the device presented, as the device server does on a mismatch."""

        async def add(store: Store) -> int:
            loaded = load_key(pem.encode(), "candidate")
            async with store.write() as session:
                row = KeyCandidate(
                    device_id=device_id,
                    fingerprint=loaded.fingerprint.hex,
                    algorithm=loaded.algorithm.value,
                    der=public_key_der(loaded.public),
                    remote_address="127.0.0.1",
                    possession_proven=proven,
                )
                session.add(row)
                await session.flush()
                return row.id

        return self.run(add)

    def set_online(self, device_id: str, online: bool = True) -> None:
        """Mark the device connected (or not), as the device server records a handshake: claiming
        by id needs the device online, and these servers run no device port."""

        async def mark(store: Store) -> None:
            async with store.write() as session:
                await session.execute(
                    update(Device).where(Device.id == device_id).values(online=online)
                )

        self.run(mark)

    def provision(
        self,
        token: str,
        device_id: str,
        pem: str | None = None,
        product_id: int | None = None,
        algorithm: str = "rsa",
    ) -> httpx.Response:
        data = {
            "deviceID": device_id,
            "publicKey": pem or device_pub_pem(),
            "filename": "cli",
            "order": f"manual_{time.time_ns()}",
            "algorithm": algorithm,
        }
        if product_id is not None:
            data["product_id"] = str(product_id)
        with self.http(token) as h:
            return h.post(f"/v1/provisioning/{device_id}", data=data)


@contextmanager
def running_server(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    extra_args: list[str] | None = None,
) -> Iterator[Server]:
    """A module's ``fermion serve`` on a fresh database of ``backend``, stopped and dropped
    after; ``extra_args`` for the modules that need a device port, workers and the like."""
    tmp = tmp_path_factory.mktemp(f"{name}-{backend}")
    url, drop = fresh_database(backend, tmp)
    srv = Server(url, tmp, extra_args)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


async def device_handshake(
    port: int,
    device_key: Any,
    device_id: str,
    server_key: Any,
    source: str = "127.0.0.1",
    on_connected: Callable[[DeviceConnection], None] | None = None,
    hold: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """A device's full TCP handshake from ``source``: True when the server answered the Hello
    (online). Then what ``on_connected`` queues on the connection (a publish, say) is sent, and
    the connection stays open until ``hold`` returns."""
    conn = DeviceConnection(device_key, bytes.fromhex(device_id), server_key, coap.Hello())
    async with asyncio.timeout(60):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            while True:
                try:
                    data = await reader.read(4096)
                except ConnectionResetError:
                    data = b""
                conn.receive_data(data)
                while (event := conn.next_event()) is not NEED_DATA:
                    if isinstance(event, Connected):
                        if on_connected is not None:
                            on_connected(conn)
                            writer.write(conn.data_to_send())
                        if hold is not None:
                            await hold()
                        return True
                writer.write(conn.data_to_send())
                if not data or conn.closed:
                    return False
        finally:
            writer.close()
