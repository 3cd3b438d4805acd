"""``fermion serve --workers 2``: two API processes behind one port, on SQLite and PostgreSQL.

Which worker serves a connection is read from the kernel (the process holding the server end of
that TCP connection), so every test here knows it used both processes, not just hoped so.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cloud_harness import (
    BACKENDS,
    PASSWORD,
    Cloud,
    Server,
    device_handshake,
    device_pub_pem,
    fresh_database,
    new_device_id,
    running_server,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from fermion.cloud.serverkeys import ensure_server_key
from fermion.cloud.store import Store
from fermion.cloud.store.models import AuditEvent, DeviceKey, ServerKey, ServerKeyState
from fermion.keys import Algorithm, generate_device_key, load_key, public_key_pem
from fermion.protocol import coap

WORKERS = 2
HELLO = coap.Hello(
    product_id=6,
    product_version=1,
    flags=0,
    platform_id=6,
    system_version=5004,
    max_message_size=960,
    max_binary_size=262144,
    ota_chunk_size=512,
)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    args = ["--workers", str(WORKERS)]
    with running_server(backend, tmp_path_factory, "workers", args, device_server=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def device_port(server: Server) -> int:
    return server.device_port


# --- which process serves a connection --------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _socket_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server end of the loopback connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            return int(fields[9])
    return None


def _holder(pids: list[int], inode: int) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue
    return None


def connection_per_worker(server: Server) -> dict[int, http.client.HTTPConnection]:
    """One keep-alive connection held by each API worker (worker pid -> connection)."""
    assert server.process is not None
    workers = _children(server.process.pid)
    found: dict[int, http.client.HTTPConnection] = {}
    spare = []
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/v1/server-keys")  # the server end exists once a worker answered
        conn.getresponse().read()
        assert conn.sock is not None
        inode = None
        for _ in range(50):
            inode = _socket_inode(server.port, conn.sock.getsockname()[1])
            if inode is not None:
                break
            time.sleep(0.01)
        pid = _holder(workers, inode) if inode is not None else None
        if pid is not None and pid not in found:
            found[pid] = conn
            if len(found) == WORKERS:
                for extra in spare:
                    extra.close()
                return found
        else:
            spare.append(conn)
    raise AssertionError(f"connections reached only workers {sorted(found)} of {workers}")


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    token: str | None = None,
    form: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    return reply.status, json.loads(reply.read() or b"null")


# --- tests --------------------------------------------------------------------------------------


def test_login_on_one_worker_use_on_every_worker(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    (_, a), (_, b) = connection_per_worker(cloud.server).items()
    status, body = call(
        a,
        "POST",
        "/oauth/token",
        form={"grant_type": "password", "username": email, "password": PASSWORD},
    )
    assert status == 200, body
    token = body["access_token"]
    for conn in (a, b):
        status, user = call(conn, "GET", "/v1/user", token)
        assert status == 200 and user["username"] == email


def test_a_token_revoked_on_one_worker_is_refused_by_the_other(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    (_, a), (_, b) = connection_per_worker(cloud.server).items()
    assert call(b, "GET", "/v1/user", token)[0] == 200  # b now has it in its token cache
    assert call(a, "DELETE", "/v1/access_tokens/current", token)[0] == 200
    assert call(a, "GET", "/v1/user", token)[0] == 401  # the revoking process: at once
    # The other process: once its cache entry runs out (TokenCache.ttl, 2 s; docs/scaling.md).
    deadline = time.monotonic() + 60
    while (status := call(b, "GET", "/v1/user", token)[0]) == 200:
        assert time.monotonic() < deadline, "the revoked token still works on the other worker"
        time.sleep(0.2)
    assert status == 401


def test_uploads_through_both_workers_land_with_their_audit_events(cloud: Cloud) -> None:
    owner, token = cloud.user_token()
    product = cloud.product(owner)
    sent: list[tuple[str, str]] = []
    for conn in connection_per_worker(cloud.server).values():
        for _ in range(3):
            device, pem = new_device_id(), device_pub_pem()
            status, body = call(
                conn,
                "POST",
                f"/v1/provisioning/{device}",
                token,
                {"deviceID": device, "publicKey": pem, "product_id": str(product)},
            )
            assert status == 200 and body["key_version"] == 1, body
            sent.append((device, load_key(pem.encode()).fingerprint.hex))

    async def stored(store: Store) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        ids = [d for d, _ in sent]
        async with store.read() as session:
            keys = await session.execute(
                select(DeviceKey.device_id, DeviceKey.fingerprint).where(
                    DeviceKey.device_id.in_(ids)
                )
            )
            events = await session.execute(
                select(AuditEvent.device_id, AuditEvent.after_fingerprint).where(
                    AuditEvent.device_id.in_(ids), AuditEvent.action == "key.upload"
                )
            )
            return {tuple(r) for r in keys}, {tuple(r) for r in events}

    keys, events = cloud.run(stored)
    assert keys == set(sent)
    assert events == set(sent)


def test_one_server_key_and_the_device_server_beside_the_workers(
    cloud: Cloud, device_port: int
) -> None:
    async def current(store: Store) -> int:
        async with store.read() as session:
            return await session.scalar(
                select(func.count())
                .select_from(ServerKey)
                .where(ServerKey.state == ServerKeyState.CURRENT)
            )

    assert cloud.run(current) == 1
    for conn in connection_per_worker(cloud.server).values():
        status, body = call(conn, "GET", "/v1/server-keys")
        assert status == 200
        assert body["device_server"]["tcp_port"] == device_port
    # A device whose key was sent through the API completes a handshake with the device server.
    _, token = cloud.user_token()
    device_key = generate_device_key(Algorithm.RSA)
    device_id = new_device_id()
    with cloud.http(token) as h:
        reply = h.post(
            f"/v1/provisioning/{device_id}",
            data={"publicKey": public_key_pem(device_key.public_key()).decode()},
        )
        assert reply.status_code == 200, reply.text
        keys = h.get("/v1/server-keys").json()["keys"]
    server_key = load_key(keys[0]["public_key"].encode()).public
    assert asyncio.run(handshake(device_port, device_key, device_id, server_key))


async def handshake(port: int, device_key: Any, device_id: str, server_key: Any) -> bool:
    """The shared handshake, with a Photon's full Hello (platform 6) rather than the default."""
    return await device_handshake(port, device_key, device_id, server_key, hello=HELLO)


async def test_racing_starts_make_one_current_server_key(backend: str, tmp_path: Path) -> None:
    """Two processes' ``ensure_server_key`` at once (the database decides, not the timing)."""
    url, drop = await asyncio.to_thread(fresh_database, backend, tmp_path)
    try:
        from fermion.cloud.store import upgrade_async

        await upgrade_async(url)
        stores = [Store(url), Store(url)]
        try:
            keys = await asyncio.gather(*(ensure_server_key(s) for s in stores))
            assert keys[0].fingerprint == keys[1].fingerprint
            async with stores[0].read() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(ServerKey)
                    .where(ServerKey.state == ServerKeyState.CURRENT)
                )
            assert count == 1
            # And the database itself refuses a second current key of the same algorithm.
            with pytest.raises(IntegrityError):
                async with stores[1].write() as session:
                    session.add(
                        ServerKey(
                            algorithm=keys[0].algorithm,
                            private_pem="-",
                            public_der=b"-",
                            fingerprint="0" * 64,
                            state=ServerKeyState.CURRENT,
                        )
                    )
        finally:
            for store in stores:
                await store.close()
    finally:
        await asyncio.to_thread(drop)


def test_workers_survive_a_token_burst_over_fresh_connections(cloud: Cloud) -> None:
    """Many short connections (each may land on either worker) all authenticate."""
    _, token = cloud.user_token()
    statuses = set()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", cloud.server.port), timeout=30) as s:
            s.sendall(
                f"GET /v1/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            statuses.add(s.recv(12)[9:12])
    assert statuses == {b"200"}, statuses


def test_device_worker_processes_beside_api_workers(backend: str, tmp_path: Path) -> None:
    """``--workers 2 --device-workers 1``: the device pool runs beside the API workers."""
    url, drop = fresh_database(backend, tmp_path)
    args = ["--workers", "2", "--device-workers", "1"]
    srv = Server(url, tmp_path, args, device_server=True)
    try:
        srv.start()
        port = srv.device_port
        cloud = Cloud(srv)
        _, token = cloud.user_token()
        device_key = generate_device_key(Algorithm.RSA)
        device_id = new_device_id()
        with cloud.http(token) as h:
            pem = public_key_pem(device_key.public_key()).decode()
            assert h.post(f"/v1/provisioning/{device_id}", data={"publicKey": pem}).is_success
            body = h.get("/v1/server-keys").json()
        assert body["device_server"]["tcp_port"] == port
        server_key = load_key(body["keys"][0]["public_key"].encode()).public
        assert asyncio.run(handshake(port, device_key, device_id, server_key))
    finally:
        srv.stop()
        drop()
