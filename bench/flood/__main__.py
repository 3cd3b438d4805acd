"""The device server under a hostile network, measured (not a test): docs/security.md.

    python -m bench.flood [--before] [--database-url URL]

1. one address (127.0.0.2) opens 2,001 silent TCP connections and keeps them; then 16 real
   devices handshake from 16 other networks (127.1.0.0/24 ... 127.16.0.0/24);
2. sustained waves: another address (127.50.0.2: the first is rate limited by now, its silent
   connections failed) opens 400 silent connections every second for 12 s while
   real devices from other networks handshake one after another;
3. 2,000 junk connections (a block of the wrong size) from 2,000 addresses; rows added to
   ``handshake_outcomes``.

``--before`` sets the per-address and per-prefix shares to the global cap and lifts the cap on
unidentified outcome rows: the server as it was before they existed. The device server runs in
this process with its default ``DeviceServerConfig`` otherwise (``max_handshakes`` 2000,
``block_timeout`` 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from fermion.cloud.devices.limits import DeviceServerConfig
from fermion.cloud.devices.server import DeviceServer
from fermion.cloud.keyops import set_device_key
from fermion.cloud.serverkeys import ensure_server_key
from fermion.cloud.store import Store, upgrade_async
from fermion.cloud.store.models import Device, HandshakeOutcome, ServerKey
from fermion.keys import Algorithm, LoadedKey, generate_device_key, load_key
from fermion.protocol import NEED_DATA, coap
from fermion.protocol.connection import Connected, DeviceConnection
from fermion.protocol.handshake import NONCE_SIZE

Held = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def silent(port: int, source: str) -> Held | None:
    with contextlib.suppress(OSError):
        return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    return None


async def got_nonce(held: Held) -> bool:
    try:
        async with asyncio.timeout(5):
            return len(await held[0].readexactly(NONCE_SIZE)) == NONCE_SIZE
    except (asyncio.IncompleteReadError, ConnectionResetError, TimeoutError):
        return False


async def handshake(port: int, key: Any, device_id: str, server_key: Any, source: str) -> bool:
    conn = DeviceConnection(key, bytes.fromhex(device_id), server_key, coap.Hello())
    try:
        async with asyncio.timeout(15):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
            try:
                while True:
                    try:
                        data = await reader.read(4096)
                    except ConnectionResetError:
                        return False
                    conn.receive_data(data)
                    while (event := conn.next_event()) is not NEED_DATA:
                        if isinstance(event, Connected):
                            return True
                    writer.write(conn.data_to_send())
                    if not data or conn.closed:
                        return False
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False


async def register(store: Store, count: int) -> list[tuple[str, Any]]:
    devices = []
    async with store.write() as session:
        for _ in range(count):
            device_id = secrets.token_hex(12)
            key = generate_device_key(Algorithm.RSA)
            row = Device(id=device_id, platform_id=6)
            session.add(row)
            await session.flush()
            await set_device_key(
                session,
                row,
                LoadedKey(key.public_key()),
                source="provisioning",
                actor="bench",
                action="key.provision",
                request_id=None,
                current_fingerprint=None,
            )
            devices.append((device_id, key))
    return devices


def close(held: list[Held | None]) -> None:
    for h in held:
        if h is not None:
            h[1].close()


async def main(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = options.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'flood.db'}"
        await upgrade_async(url)
        store = Store(url)
        await ensure_server_key(store)
        config = DeviceServerConfig(port=0)
        if options.before:
            config = replace(
                config,
                max_handshakes_per_address=config.max_handshakes,
                max_handshakes_per_prefix=config.max_handshakes,
                max_unidentified_outcomes=10**9,
            )
        server = DeviceServer(store, config)
        await server.start()
        assert server.port is not None
        port = server.port
        async with store.read() as session:
            pem = await session.scalar(
                select(ServerKey.private_pem).where(ServerKey.state == "current")
            )
        assert pem is not None
        server_key = load_key(pem.encode(), "server").public
        devices = await register(store, 16 + 200)
        label = "before: no shares, no cap" if options.before else "defaults"
        print(
            f"== {label}: max_handshakes {config.max_handshakes}, per address "
            f"{config.max_handshakes_per_address}, per prefix {config.max_handshakes_per_prefix}, "
            f"unidentified outcome rows {config.max_unidentified_outcomes}"
        )

        # 1. 2,001 silent connections from one address, then 16 devices from 16 networks.
        held = [await silent(port, "127.0.0.2") for _ in range(2001)]
        nonces = sum(await asyncio.gather(*(got_nonce(h) for h in held if h is not None)))
        ok = [
            await handshake(port, key, device_id, server_key, f"127.{i + 1}.0.5")
            for i, (device_id, key) in enumerate(devices[:16])
        ]
        print(
            f"1. 2001 silent connections from 127.0.0.2: {nonces} got a nonce (hold a slot); "
            f"then {sum(ok)} of 16 real devices from other networks connected"
        )
        close(held)
        await asyncio.sleep(1)

        # 2. Sustained waves: 400 silent connections a second for 12 s.
        stop = asyncio.Event()
        waves: list[Held | None] = []

        async def attack() -> None:
            while not stop.is_set():
                started = time.monotonic()
                waves.extend([await silent(port, "127.50.0.2") for _ in range(400)])
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

        attacker = asyncio.get_running_loop().create_task(attack())
        await asyncio.sleep(3)  # the waves build up first
        tried = refused = 0
        busiest = 0
        end = time.monotonic() + 9
        pool = devices[16:]
        while time.monotonic() < end:
            device_id, key = pool[tried % len(pool)]
            source = f"127.{100 + tried % 100}.0.{tried // 100 + 1}"
            tried += 1
            busiest = max(busiest, server.handshaking)
            if not await handshake(port, key, device_id, server_key, source):
                refused += 1
            await asyncio.sleep(0.05)
        stop.set()
        await attacker
        print(
            f"2. waves of 400 silent connections/s from 127.50.0.2 ({len(waves)} opened): "
            f"{refused} of {tried} real device handshakes refused (at most {busiest} "
            f"handshakes in progress)"
        )
        close(waves)
        await asyncio.sleep(1)

        # 3. 2,000 junk connections from 2,000 addresses.
        await server.recorder.flush()
        async with store.read() as session:
            before = await session.scalar(select(func.count()).select_from(HandshakeOutcome))
        for i in range(2000):
            h = await silent(port, f"127.200.{i // 250}.{i % 250 + 1}")
            if h is None:
                continue
            with contextlib.suppress(Exception):
                await got_nonce(h)
                h[1].write(b"\x42" * 100)
                h[1].write_eof()
                async with asyncio.timeout(5):
                    await h[0].read()
            h[1].close()
        await asyncio.sleep(1)
        await server.recorder.flush()
        async with store.read() as session:
            after = await session.scalar(select(func.count()).select_from(HandshakeOutcome))
        print(
            f"3. 2000 junk connections from 2000 addresses: handshake_outcomes "
            f"{before} -> {after} rows (+{(after or 0) - (before or 0)})"
        )
        await server.stop()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", action="store_true")
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
