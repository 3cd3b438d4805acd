"""A hostile network: silent connections from one address or prefix, over real loopback sockets.

Linux routes all of 127.0.0.0/8 to loopback, so a socket bound to 127.0.0.2 stands for an
attacker's address and one bound to 127.1.0.5 for a device on another network (another /24).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import replace
from pathlib import Path

from devices_harness import FAST as SERVER_FAST
from devices_harness import STEP, start_cloud, stop_cloud, wait_for

from fermion.cloud.store.models import HandshakeOutcome
from fermion.device.online import LED_CONNECTED, Fleet, SimProfile
from fermion.keys import Algorithm, generate_device_key
from fermion.protocol import NEED_DATA, coap
from fermion.protocol.connection import DeviceConnection
from fermion.protocol.handshake import NONCE_SIZE

DEVICE = SimProfile(ping_interval=0.3, backoff_initial=0.2, backoff_max=0.5)

# Small caps keep the tests fast (a few connections fill a share, not hundreds).
SMALL = replace(
    SERVER_FAST,
    max_handshakes=20,
    max_handshakes_per_address=3,
    max_handshakes_per_prefix=6,
    block_timeout=60.0,  # the silent connections outlive the test unless it closes them
)

Held = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def silent(port: int, source: str) -> tuple[Held, bool]:
    """A connection from ``source`` that never sends a byte; True when the server sent it a
    nonce (it holds a handshake slot), False when the server closed it before any."""
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            nonce = await reader.readexactly(NONCE_SIZE)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return (reader, writer), False
    assert len(nonce) == NONCE_SIZE
    return (reader, writer), True


def close_all(held: list[Held]) -> None:
    for _, writer in held:
        with contextlib.suppress(Exception):
            writer.close()


async def test_one_address_cannot_hold_every_handshake_slot(
    fermion_home: Path, database_url: str
) -> None:
    cloud = await start_cloud(fermion_home / "flood", SMALL, database_url)
    held: list[Held] = []
    fleet: Fleet | None = None
    try:
        # 30 silent connections from one address: only its share (3) gets a nonce.
        answered = []
        for _ in range(30):
            conn, got_nonce = await silent(cloud.port, "127.0.0.2")
            held.append(conn)
            answered.append(got_nonce)
        assert answered.count(True) == 3, answered
        assert answered[:3] == [True, True, True]  # the share is taken from accept, at once
        # Other addresses of the same /24 share the prefix's 6 slots, then are refused too.
        prefix = []
        for last in range(3, 13):
            conn, got_nonce = await silent(cloud.port, f"127.0.0.{last}")
            held.append(conn)
            prefix.append(got_nonce)
        assert prefix.count(True) == 3, prefix
        assert cloud.server.handshaking == 6  # of 20: the rest of the server is free
        # A real device on another network connects at once and comes online, while all the
        # attacker's connections are still open.
        device = await cloud.new_device()
        fleet = Fleet.of([device], profile=replace(DEVICE, source_address="127.1.0.5"))
        fleet.start()
        runner = fleet.runner(device.id)
        await wait_for(lambda: runner.led == LED_CONNECTED and device.id in cloud.server.sessions)
        assert runner.attempts == 1 and runner.connections == 1
        await cloud.server.recorder.flush()
        row = await cloud.device(device.id)
        assert row is not None and row.online and row.last_ip_address == "127.1.0.5"
        # Once the silent connections hang up, their slots are free again.
        close_all(held)
        held.clear()
        await wait_for(lambda: cloud.server.handshaking == 0)
        _, got_nonce = await silent(cloud.port, "127.0.0.2")
        assert got_nonce
    finally:
        close_all(held)
        if fleet is not None:
            await fleet.stop()
        await stop_cloud(cloud)


async def test_sustained_waves_from_one_prefix_refuse_no_real_device(
    fermion_home: Path, database_url: str
) -> None:
    # The silent connections time out after 1 s and the attacker opens a new wave every 0.2 s,
    # so the prefix's share is always taken while real devices from other networks connect.
    config = replace(SMALL, block_timeout=1.0)
    cloud = await start_cloud(fermion_home / "waves", config, database_url)
    stop = asyncio.Event()
    waves = 0
    held: list[Held] = []

    async def attack() -> None:
        nonlocal waves
        while not stop.is_set():
            for last in range(2, 12):
                with contextlib.suppress(OSError, TimeoutError):
                    conn, _ = await silent(cloud.port, f"127.0.0.{last}")
                    held.append(conn)
            waves += 1
            await asyncio.sleep(0.2)

    attacker = asyncio.get_running_loop().create_task(attack())
    devices = [await cloud.new_device() for _ in range(8)]
    fleets = [
        Fleet.of([d], profile=replace(DEVICE, source_address=f"127.{i + 1}.0.5"))
        for i, d in enumerate(devices)
    ]
    try:
        await wait_for(lambda: waves >= 3)
        for fleet in fleets:
            fleet.start()
            await asyncio.sleep(0.3)  # devices arrive over several waves, not all at once
        await wait_for(lambda: all(d.id in cloud.server.sessions for d in devices))
        assert waves >= 5
        # Every device got through on its first attempt: none was refused while the waves ran.
        assert [f.runners[0].attempts for f in fleets] == [1] * len(fleets)
        assert cloud.server.shares.of_prefix("127.0.0.2") <= config.max_handshakes_per_prefix
    finally:
        stop.set()
        await attacker
        close_all(held)
        for fleet in fleets:
            await fleet.stop()
        await stop_cloud(cloud)


async def junk(port: int, source: str, payload: bytes) -> None:
    """One connection from ``source`` that answers the nonce with ``payload`` and hangs up."""
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            await reader.readexactly(NONCE_SIZE)
            writer.write(payload)
            writer.write_eof()
            with contextlib.suppress(ConnectionResetError):
                await reader.read()
        finally:
            writer.close()


async def unknown_id(port: int, source: str, server_key: object, device_key: object) -> None:
    """A well-formed handshake naming a device id nobody registered (made up per call)."""
    conn = DeviceConnection(
        device_key,  # type: ignore[arg-type]
        secrets.token_bytes(12),
        server_key,  # type: ignore[arg-type]
        coap.Hello(),
    )
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            while not conn.closed:
                try:
                    data = await reader.read(4096)
                except ConnectionResetError:
                    data = b""
                conn.receive_data(data)
                while conn.next_event() is not NEED_DATA:
                    pass
                writer.write(conn.data_to_send())
                if not data:
                    break
        finally:
            writer.close()


def counted(rows: list[HandshakeOutcome]) -> int:
    return sum(int(json.loads(r.detail or "{}").get("count", 1)) for r in rows)


async def test_junk_from_many_addresses_keeps_the_outcome_table_bounded(
    fermion_home: Path, database_url: str
) -> None:
    keep = 40
    cloud = await start_cloud(
        fermion_home / "junk", replace(SERVER_FAST, max_unidentified_outcomes=keep), database_url
    )
    try:
        # A registered device's history is its own: it stays whatever the junk.
        device = await cloud.new_device()
        fleet = Fleet.of([device], profile=DEVICE)
        fleet.start()
        await wait_for(lambda: device.id in cloud.server.sessions)
        await fleet.stop()
        await cloud.server.recorder.flush()
        mine = [o for o in await cloud.outcomes() if o.device_id == device.id]
        assert mine
        # 300 malformed blocks from 300 addresses, then 60 handshakes naming made-up ids.
        for i in range(300):
            await junk(cloud.port, f"127.4.{i // 200}.{i % 200 + 1}", b"\x42" * 100)
        server_key = (await cloud.server_private_key()).public_key()
        device_key = generate_device_key(Algorithm.RSA)
        for i in range(60):
            await unknown_id(cloud.port, f"127.5.0.{i + 1}", server_key, device_key)
        await wait_for(lambda: cloud.server.handshaking == 0)
        rows = await cloud.outcomes()
        strangers = [o for o in rows if o.device_id != device.id]
        by_address = [o for o in strangers if o.remote_address is not None]
        totals = [o for o in strangers if o.remote_address is None]
        # Bounded: the kept rows plus one total per outcome; 360 connections all counted.
        assert len(by_address) <= keep, len(by_address)
        assert {t.outcome for t in totals} <= {"malformed", "unknown_device"}
        assert len(totals) == len({t.outcome for t in totals})
        assert counted([o for o in strangers if o.outcome == "malformed"]) == 300
        assert counted([o for o in strangers if o.outcome == "unknown_device"]) == 60
        # The most recent strangers are the ones kept by address.
        assert any(o.remote_address == "127.5.0.60" for o in by_address)
        assert not any(o.remote_address == "127.4.0.1" for o in by_address)
        # The device's own rows are all still there, unchanged in number.
        assert [o.id for o in rows if o.device_id == device.id] == [o.id for o in mine]
    finally:
        await stop_cloud(cloud)
