"""Bad input from the network: the connection is closed and the outcome recorded, nothing else."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from devices_harness import FAST as SERVER_FAST
from devices_harness import STEP, Cloud, start_cloud, stop_cloud, wait_for
from sqlalchemy import func, select

from fermion.cloud.store.models import AuditEvent, DeviceKey, KeyCandidate
from fermion.device.online import Fleet, SimProfile, hello_for
from fermion.device.store import SimDevice
from fermion.protocol import NEED_DATA, Outcome, coap
from fermion.protocol.connection import Connected, DeviceConnection
from fermion.protocol.handshake import NONCE_SIZE, DeviceHandshake

FAST = SimProfile(ping_interval=0.3, backoff_initial=0.2, backoff_max=0.5)


async def snapshot(cloud: Cloud) -> tuple[int, int, int]:
    async with asyncio.timeout(STEP), cloud.store.read() as session:
        return (
            await session.scalar(select(func.count()).select_from(DeviceKey)) or 0,
            await session.scalar(select(func.count()).select_from(KeyCandidate)) or 0,
            await session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    chunks = []
    try:
        async with asyncio.timeout(STEP):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


async def open_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(STEP):
        return await asyncio.open_connection("127.0.0.1", port)


async def read_nonce(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(STEP):
        return await reader.readexactly(NONCE_SIZE)


async def outcome_of(cloud: Cloud, outcome: Outcome, device_id: str | None = None) -> bool:
    return any(
        o.outcome == outcome and (device_id is None or o.device_id == device_id)
        for o in await cloud.outcomes()
    )


def _device_key(device: SimDevice):  # type: ignore[no-untyped-def]
    from fermion.device.online import read_flash

    return read_flash(device)


async def connected_device(
    cloud: Cloud, device: SimDevice, hello: coap.Hello | None = None
) -> tuple[DeviceConnection, asyncio.StreamReader, asyncio.StreamWriter, bool]:
    """A hand-driven device after the handshake; the flag says whether the server said Hello."""
    flash = _device_key(device)
    conn = DeviceConnection(
        flash.device_key, bytes.fromhex(device.id), flash.server_key, hello or hello_for(device)
    )
    reader, writer = await open_connection(cloud.port)
    while conn.session is None or conn.state.name == "AWAIT_HELLO":
        async with asyncio.timeout(STEP):
            data = await reader.read(4096)
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, Connected):
                return conn, reader, writer, True
        writer.write(conn.data_to_send())
        if not data or conn.closed:
            return conn, reader, writer, False
    return conn, reader, writer, True


async def test_block_of_the_wrong_size(cloud: Cloud) -> None:
    before = await snapshot(cloud)
    reader, writer = await open_connection(cloud.port)
    assert len(await read_nonce(reader)) == NONCE_SIZE
    writer.write(b"\x42" * 100)
    writer.write_eof()
    rest = await read_all(reader)
    assert b"Traceback" not in rest and rest == b""
    await wait_for(lambda: outcome_of(cloud, Outcome.MALFORMED))
    assert await snapshot(cloud) == before
    await wait_for(lambda: not cloud.server.links)


async def test_garbage_after_the_handshake(cloud: Cloud) -> None:
    device = await cloud.new_device()
    _conn, reader, writer, ok = await connected_device(cloud, device)
    assert ok
    writer.write(b"\x00\x20" + b"garbage!" * 4)  # a frame that does not decrypt to PKCS#7
    rest = await read_all(reader)
    assert b"Traceback" not in rest
    await wait_for(lambda: outcome_of(cloud, Outcome.MALFORMED, device.id))
    await wait_for(lambda: device.id not in cloud.server.sessions)


async def test_frame_longer_than_the_limit(cloud: Cloud) -> None:
    device = await cloud.new_device()
    _conn, reader, writer, ok = await connected_device(cloud, device)
    assert ok
    writer.write(b"\xff\xf0")  # announces 65520 bytes; refused before they arrive
    await read_all(reader)
    await wait_for(lambda: outcome_of(cloud, Outcome.MALFORMED, device.id))
    assert not cloud.server.links


async def test_unknown_critical_coap_option(cloud: Cloud) -> None:
    device = await cloud.new_device()
    conn, reader, writer, ok = await connected_device(cloud, device)
    assert ok
    message = coap.Message(
        coap.MessageType.CON,
        coap.Code.GET,
        conn._next_id(),
        options=((11, b"x"), (9, b"?")),  # option 9: odd (critical) and not in RFC 7252
    )
    conn._write(message)
    writer.write(conn.data_to_send())
    await read_all(reader)
    await wait_for(lambda: outcome_of(cloud, Outcome.MALFORMED, device.id))


async def test_hello_naming_another_device(cloud: Cloud) -> None:
    device = await cloud.new_device()
    other = await cloud.new_device()
    hello = coap.Hello(platform_id=6, device_id=bytes.fromhex(other.id))
    _conn, reader, _writer, ok = await connected_device(cloud, device, hello)
    assert not ok
    await read_all(reader)
    await wait_for(lambda: outcome_of(cloud, Outcome.MALFORMED, device.id))
    assert device.id not in cloud.server.sessions and other.id not in cloud.server.sessions


async def test_replayed_nonce(cloud: Cloud) -> None:
    device = await cloud.new_device()
    flash = _device_key(device)
    # First connection: record the device's block.
    reader, writer = await open_connection(cloud.port)
    handshake = DeviceHandshake(flash.device_key, bytes.fromhex(device.id), flash.server_key)
    handshake.receive_data(await read_nonce(reader))
    handshake.next_event()
    block = handshake.identify()
    writer.close()
    # Second connection: play it back against a fresh nonce.
    reader, writer = await open_connection(cloud.port)
    await read_nonce(reader)
    writer.write(block)
    assert await read_all(reader) == b""
    await wait_for(lambda: outcome_of(cloud, Outcome.BAD_NONCE))


async def test_unknown_device_is_refused_before_the_key_block(cloud: Cloud) -> None:
    device = await cloud.new_device(register=False)
    fleet = Fleet.of([device], profile=FAST)
    fleet.start()
    try:
        runner = fleet.runner(device.id)
        await wait_for(lambda: runner.device.load_status().last_protocol_error is not None)
        assert device.load_status().last_protocol_error["code"] == 26  # type: ignore[index]
        await wait_for(lambda: outcome_of(cloud, Outcome.UNKNOWN_DEVICE, device.id))
    finally:
        await fleet.stop()


async def test_idle_connections_are_closed_on_time_and_do_not_delay_devices(
    cloud: Cloud,
) -> None:
    # From 500 addresses over five /24s (one of 127.0.0.0/8's loopback addresses each): one
    # address or prefix alone is held to its share of the handshakes (test_devices_flood).
    idle = []
    for i in range(500):
        source = (f"127.2.{i // 100}.{i % 100 + 1}", 0)
        async with asyncio.timeout(STEP):
            idle.append(await asyncio.open_connection("127.0.0.1", cloud.port, local_addr=source))
    devices = [await cloud.new_device() for _ in range(3)]
    fleet = Fleet.of(devices, profile=FAST)
    fleet.start()
    try:
        # Real devices get through while all 500 sit silent.
        await wait_for(lambda: len(cloud.server.sessions) == 3)
        closed = await asyncio.gather(*(read_all(r) for r, _ in idle))
        assert all(len(c) == NONCE_SIZE for c in closed)  # the nonce, then the server hung up
        await wait_for(lambda: cloud.server.handshaking == 0)
        timeouts = [o for o in await cloud.outcomes() if o.outcome == Outcome.TIMEOUT]
        assert sum(int(json.loads(o.detail or "{}")["count"]) for o in timeouts) >= 500
        assert len(cloud.server.sessions) == 3
    finally:
        for _, w in idle:
            w.close()
        await fleet.stop()


async def test_failed_handshakes_are_rate_limited_per_address(
    fermion_home: Path, database_url: str
) -> None:
    cloud = await start_cloud(
        fermion_home / "limited", replace(SERVER_FAST, failure_limit=3), database_url
    )
    try:
        for _ in range(3):
            reader, writer = await open_connection(cloud.port)
            await read_nonce(reader)
            writer.write(b"\x00" * 256)
            await read_all(reader)
        reader, writer = await open_connection(cloud.port)
        assert await read_all(reader) == b""  # refused before any nonce (no RSA spent)
    finally:
        await stop_cloud(cloud)
