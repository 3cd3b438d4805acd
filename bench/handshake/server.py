"""The device server over real sockets: handshakes/s with 1 and 2 workers vs the RSA ceiling,
and connected devices held at once with the worker's RSS per device.

    python -m bench.handshake.server [--seconds 10] [--concurrency 64] [--hold 10000]

The ceiling is measured first in this process, with the same library: per handshake one
RSA-2048 PKCS#1 v1.5 decrypt, one RSA-2048 raw signature and one RSA-1024 encrypt, on one core.
Then ``fermion.cloud.devices.service.WorkerPool`` runs 1, then 2 device-server processes on a
loopback port over a temporary SQLite store, and load-generator processes drive complete
handshakes (nonce, key block, session key, Hello both ways) with ``DeviceConnection``. Their
CPU time is reported so it is known whether they, not the server, were the limit. The machine
is shared: numbers are printed as ratios to the ceiling measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

PKCS1 = padding.PKCS1v15()


def ceiling(seconds: float) -> float:
    from fermion.keys import generate_device_key, generate_server_key

    server = generate_server_key()
    device = generate_device_key().public_key()
    block = server.public_key().encrypt(os.urandom(214), PKCS1)
    digest = os.urandom(20)
    done = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        server.decrypt(block, PKCS1)
        server.sign(digest, PKCS1, NoDigestInfo())
        device.encrypt(os.urandom(40), PKCS1)
        done += 1
    return done / (time.process_time() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _setup_store(url: str, devices: list[tuple[str, bytes]]) -> bytes:
    from fermion.cloud.serverkeys import ensure_server_key
    from fermion.cloud.store import Store, upgrade_async
    from fermion.cloud.store.models import Device, DeviceKey
    from fermion.keys import fingerprint_der

    await upgrade_async(url)
    store = Store(url)
    row = await ensure_server_key(store)
    async with store.write() as session:
        for device_id, _der in devices:
            session.add(Device(id=device_id, platform_id=6))
        await session.flush()
        for device_id, der in devices:
            key = DeviceKey(
                device_id=device_id,
                version=1,
                algorithm="rsa",
                der=der,
                fingerprint=fingerprint_der(der).hex,
                source="import",
                created_by="bench",
            )
            session.add(key)
            await session.flush()
            device = await session.get(Device, device_id)
            assert device is not None
            device.current_key_id = key.id
    await store.close()
    return row.public_der


# -- load generator (runs in child processes) ----------------------------------------------------


def _load_keys(pems: list[tuple[str, bytes]], server_der: bytes) -> tuple[list[Any], Any]:
    from cryptography.hazmat.primitives.serialization import (
        load_der_public_key,
        load_pem_private_key,
    )

    keys = [(bytes.fromhex(i), load_pem_private_key(p, None)) for i, p in pems]
    return keys, load_der_public_key(server_der)


async def _handshake(port: int, device_id: bytes, key: Any, server: Any, hold: bool) -> Any:
    from fermion.protocol import NEED_DATA, Failure
    from fermion.protocol.coap import Hello
    from fermion.protocol.connection import Connected, DeviceConnection

    conn = DeviceConnection(key, device_id, server, Hello(6, 1, 0x36, 6, system_version=5004))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                return None
            conn.receive_data(data)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, Connected):
                    if hold:
                        return writer
                    return True
                if isinstance(event, Failure):
                    return None
            out = conn.data_to_send()
            if out:
                writer.write(out)
    finally:
        if not hold:
            writer.close()


def _rate_main(args: tuple[Any, ...]) -> tuple[int, float]:
    port, pems, server_der, seconds, concurrency = args
    keys, server = _load_keys(pems, server_der)

    async def go() -> int:
        done = 0
        end = time.monotonic() + seconds

        async def one(index: int) -> None:
            nonlocal done
            i = index
            while time.monotonic() < end:
                device_id, key = keys[i % len(keys)]
                i += concurrency
                try:
                    if await _handshake(port, device_id, key, server, False):
                        done += 1
                except OSError:
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(one(i) for i in range(concurrency)))
        return done

    start = os.times()
    done = asyncio.run(go())
    end = os.times()
    return done, (end.user - start.user) + (end.system - start.system)


async def _hold(
    port: int, pems: list[tuple[str, bytes]], server_der: bytes, pid: int
) -> tuple[int, int, int, int]:
    """Connect every device and keep it; RSS of the worker before, while held, and after."""
    keys, server = _load_keys(pems, server_der)
    base = rss_kb(pid)
    writers: list[Any] = []
    sem = asyncio.Semaphore(64)

    async def one(device_id: bytes, key: Any) -> None:
        async with sem:
            for _ in range(5):
                try:
                    w = await _handshake(port, device_id, key, server, True)
                except OSError:
                    w = None
                if w:
                    writers.append(w)
                    return

    await asyncio.gather(*(one(i, k) for i, k in keys))
    await asyncio.sleep(2)
    held = rss_kb(pid)
    for w in writers:
        w.close()
    await asyncio.sleep(3)
    return len(writers), base, held, rss_kb(pid)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--hold", type=int, default=10_000)
    parser.add_argument("--loadgens", type=int, default=2)
    options = parser.parse_args()

    from fermion.cloud.devices.limits import DeviceServerConfig
    from fermion.cloud.devices.service import WorkerPool
    from fermion.keys import generate_device_key, private_key_pem, public_key_der

    print("measuring the RSA ceiling (one core)...", flush=True)
    top = ceiling(5.0)
    print(f"ceiling: {top:.0f} handshakes/s per core (2048 decrypt + 2048 sign + 1024 encrypt)")

    total = max(options.devices, options.hold)
    # Distinct ids; keys are reused across ids (the server does not care, key generation would
    # dominate the run otherwise).
    distinct = [generate_device_key() for _ in range(min(total, 100))]
    keys = [distinct[i % len(distinct)] for i in range(total)]
    ids = [os.urandom(12).hex() for _ in keys]
    pems = [(i, private_key_pem(k)) for i, k in zip(ids, keys, strict=True)]
    tmp = Path(tempfile.mkdtemp(prefix="fermion-bench-"))
    url = f"sqlite+aiosqlite:///{tmp / 'fermion.db'}"
    server_der = asyncio.run(
        _setup_store(
            url, [(i, public_key_der(k.public_key())) for i, k in zip(ids, keys, strict=True)]
        )
    )
    context = multiprocessing.get_context("spawn")
    rate_pems = pems[: options.devices]

    for workers in (1, 2):
        port = free_port()
        config = DeviceServerConfig(port=port, failure_limit=10**9, max_handshakes=100_000)
        pool = WorkerPool(url, config, workers)
        pool.start()
        try:
            per = max(1, options.concurrency // options.loadgens)
            pids = [p.pid for p in pool.processes]
            cpu0 = sum(cpu_seconds(p) for p in pids)
            with context.Pool(options.loadgens) as procs:
                results = procs.map(
                    _rate_main,
                    [(port, rate_pems, server_der, options.seconds, per)] * options.loadgens,
                )
            server_cpu = sum(cpu_seconds(p) for p in pids) - cpu0
            done = sum(r[0] for r in results)
            cpu = sum(r[1] for r in results)
            rate = done / options.seconds
            per_cpu = done / server_cpu if server_cpu else 0.0
            print(
                f"{workers} worker(s): {rate:.0f} handshakes/s wall = {rate / top:.2f} x the "
                f"one-core ceiling; server CPU {server_cpu / options.seconds:.2f} cores, "
                f"{per_cpu:.0f} handshakes per server CPU-second = {per_cpu / top:.2f} x ceiling; "
                f"load generator CPU {cpu / options.seconds:.2f} cores",
                flush=True,
            )
        finally:
            pool.stop()

    if options.hold:
        port = free_port()
        config = DeviceServerConfig(
            port=port, failure_limit=10**9, max_handshakes=100_000, idle_timeout=3600
        )
        pool = WorkerPool(url, config, 1)
        pool.start()
        try:
            pid = pool.processes[0].pid
            time.sleep(1)
            count, base, held, after = asyncio.run(
                _hold(port, pems[: options.hold], server_der, pid)
            )
            per_device = (held - base) * 1024 / max(count, 1)
            print(
                f"held {count} connected devices: worker RSS {base / 1024:.1f} MB -> "
                f"{held / 1024:.1f} MB = {per_device / 1024:.1f} KB per device; "
                f"after all disconnected: {after / 1024:.1f} MB",
                flush=True,
            )
        finally:
            pool.stop()


if __name__ == "__main__":
    main()
