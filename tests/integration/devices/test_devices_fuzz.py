"""Hypothesis against the live device server socket: handshake blocks, frames and CoAP.

Whatever arrives, the server never crashes, never writes a traceback, closes the connection,
and the store changes only in its outcome counters (and, for a real session, presence).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from devices_harness import Cloud, describe, logged_failures, start_cloud, stop_cloud
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fermion.cloud.store.models import AuditEvent, Device, DeviceKey, KeyCandidate
from fermion.device.online import hello_for, read_flash
from fermion.device.store import SimDevice
from fermion.protocol import NEED_DATA
from fermion.protocol.channel import Channel
from fermion.protocol.connection import Connected, DeviceConnection
from fermion.protocol.handshake import NONCE_SIZE
from harness import BACKENDS, fresh_database

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Live:
    """The device server in its own thread and event loop; tests use blocking sockets."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # Every example flushes the writer twice: its production batching delay (0.25 s) would
        # be 90 s of sleeping per backend, and batching is not what this file tests.
        self.cloud: Cloud = self.call(
            start_cloud(home, database_url=database_url, recorder_linger=0)
        )
        self.device: SimDevice = self.call(self.cloud.new_device())

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def snapshot(self) -> tuple[int, ...]:
        async def counts() -> tuple[int, ...]:
            await self.cloud.server.recorder.flush()
            async with self.cloud.store.read() as session:
                return tuple(
                    [
                        await session.scalar(select(func.count()).select_from(table)) or 0
                        for table in (Device, DeviceKey, KeyCandidate, AuditEvent)
                    ]
                )

        return self.call(counts())

    def close(self) -> None:
        self.call(stop_cloud(self.cloud))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("fuzz-home")
    url, drop = fresh_database(request.param, home)
    mp = pytest.MonkeyPatch()
    mp.setenv("FERMION_HOME", str(home))
    try:
        with logged_failures() as failures:
            server = Live(home, url)
            try:
                yield server
            finally:
                server.close()
        assert not failures, f"the device server logged failures:\n{describe(failures)}"
    finally:
        mp.undo()
        drop()


def drain(sock: socket.socket) -> bytes:
    """Everything until the server closes; fails the test if it never does."""
    sock.settimeout(20)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def connect(live: Live) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.cloud.port), timeout=20)


def handshaken(live: Live) -> tuple[socket.socket, DeviceConnection]:
    """A socket past the handshake and the Hello exchange, and the device's end."""
    flash = read_flash(live.device)
    conn = DeviceConnection(
        flash.device_key, bytes.fromhex(live.device.id), flash.server_key, hello_for(live.device)
    )
    sock = connect(live)
    while True:
        data = sock.recv(4096)
        assert data, "server closed during a good handshake"
        conn.receive_data(data)
        done = False
        while (event := conn.next_event()) is not NEED_DATA:
            done = done or isinstance(event, Connected)
        sock.sendall(conn.data_to_send())
        if done:
            return sock, conn


def check_clean(live: Live, received: bytes) -> None:
    assert b"Traceback" not in received and b"Error" not in received


@FUZZ
@given(st.binary(max_size=700), st.booleans())
def test_fuzz_key_block(live: Live, data: bytes, close_early: bool) -> None:
    before = live.snapshot()
    with connect(live) as sock:
        nonce = sock.recv(NONCE_SIZE, socket.MSG_WAITALL)
        assert len(nonce) == NONCE_SIZE
        with contextlib.suppress(OSError):
            sock.sendall(data)
            if close_early or len(data) < 256:
                sock.shutdown(socket.SHUT_WR)
        check_clean(live, drain(sock))
    assert live.snapshot() == before


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_frames_after_the_handshake(live: Live, data: bytes) -> None:
    before = live.snapshot()
    sock, _conn = handshaken(live)
    with sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        check_clean(live, drain(sock))
    assert live.snapshot() == before


@FUZZ
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=4))
def test_fuzz_coap_inside_good_frames(live: Live, messages: list[bytes]) -> None:
    before = live.snapshot()
    sock, conn = handshaken(live)
    channel: Channel = conn._channel  # type: ignore[assignment]
    with sock:
        # The server may hang up after any message: that is an allowed answer.
        with contextlib.suppress(OSError):
            for plaintext in messages:
                sock.sendall(channel.send(plaintext))
            sock.shutdown(socket.SHUT_WR)
        check_clean(live, drain(sock))
    assert live.snapshot() == before


def test_fuzzing_leaves_no_connection_behind(live: Live) -> None:
    async def settled() -> bool:
        for _ in range(200):
            if not live.cloud.server.links and live.cloud.server.handshaking == 0:
                return True
            await asyncio.sleep(0.05)
        return False

    assert live.call(settled())
