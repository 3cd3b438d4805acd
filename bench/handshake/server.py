"""The device server over real sockets: handshakes/s with 1 and 2 workers vs the RSA ceiling,
and connected devices held at once with the worker's RSS per device.

    python -m bench.handshake.server [--seconds 10] [--concurrency 64] [--hold 10000]
        [--churns 2] [--workers 1,2]

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from fermion.protocol import NEED_DATA, Failure
from fermion.protocol.connection import Connected, DeviceConnection

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
    from fermion.cloud.keyops import NewKey, append_key_version
    from fermion.cloud.serverkeys import ensure_server_key
    from fermion.cloud.store import Store, upgrade_async
    from fermion.cloud.store.models import Device
    from fermion.keys import Algorithm, fingerprint_der

    await upgrade_async(url)
    store = Store(url)
    row = await ensure_server_key(store)
    async with store.write() as session:
        for device_id, _der in devices:
            session.add(Device(id=device_id, platform_id=6))
    # Through the one key write (keyops), as an import would.
    async with store.direct_write() as runner:
        for device_id, der in devices:
            await append_key_version(
                runner,
                device_id,
                None,
                NewKey(Algorithm.RSA, der, fingerprint_der(der).hex),
                source="import",
                actor="bench",
                action="key.import",
                request_id=None,
                current_fingerprint=None,
            )
    await store.close()
    return row.public_der


# -- load generator (runs in child processes) ----------------------------------------------------


@dataclass(frozen=True)
class _Fleet:
    """What a device can know before it connects: its key, id and public-key DER, the server's
    public key, its Hello. Only the key block (it carries the server's nonce), the session-key
    check and the Hello frames depend on the connection."""

    devices: list[tuple[bytes, Any, bytes]]  # (id, private key, SPKI DER)
    server: Any
    hello: Any


def _load_fleet(pems: list[tuple[str, bytes]], server_der: bytes) -> _Fleet:
    from cryptography.hazmat.primitives.serialization import (
        load_der_public_key,
        load_pem_private_key,
    )

    from fermion.keys import public_key_der
    from fermion.protocol.coap import Hello

    loaded: dict[bytes, tuple[Any, bytes]] = {}
    devices = []
    for device_id, pem in pems:
        if pem not in loaded:  # keys are shared across ids; load each once
            key = load_pem_private_key(pem, None)
            loaded[pem] = (key, public_key_der(key.public_key()))  # type: ignore[arg-type]
        key, der = loaded[pem]
        devices.append((bytes.fromhex(device_id), key, der))
    hello = Hello(6, 1, 0x36, 6, system_version=5004)
    return _Fleet(devices, load_der_public_key(server_der), hello)


class _Device(asyncio.Protocol):
    """One device connection: a ``DeviceConnection`` fed from the socket (no stream objects).

    It checks what a real device checks (the session key decrypts with its key, the server's
    signature over it, the server's Hello) and resolves ``done`` with True once connected."""

    __slots__ = ("conn", "done", "hold", "transport")

    def __init__(self, conn: Any, done: asyncio.Future[bool], hold: bool) -> None:
        self.conn = conn
        self.done = done
        self.hold = hold
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, Connected):
                self._finish(True)
                return
            if isinstance(event, Failure):
                self._finish(False)
                return
        out = conn.data_to_send()
        if out:
            self.transport.write(out)

    def _finish(self, ok: bool) -> None:
        if not self.done.done():
            self.done.set_result(ok)
        if not (ok and self.hold):
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(False)


async def _connect(port: int, fleet: _Fleet, index: int, hold: bool) -> _Device | None:
    """One complete handshake as device ``index``; the connected protocol, or None."""
    device_id, key, der = fleet.devices[index % len(fleet.devices)]
    conn = DeviceConnection(key, device_id, fleet.server, fleet.hello, public_key_der=der)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()
    _transport, device = await loop.create_connection(
        lambda: _Device(conn, done, hold), "127.0.0.1", port
    )
    return device if await done else None


def _rate_main(args: tuple[Any, ...]) -> tuple[int, float]:
    from fermion.cloud.devices.service import use_uvloop

    port, pems, server_der, seconds, concurrency = args
    fleet = _load_fleet(pems, server_der)
    use_uvloop()

    async def go() -> int:
        done = 0
        end = time.monotonic() + seconds

        async def one(index: int) -> None:
            nonlocal done
            i = index
            while time.monotonic() < end:
                i += concurrency
                try:
                    if await _connect(port, fleet, i, False):
                        done += 1
                except OSError:
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(one(i) for i in range(concurrency)))
        return done

    start = os.times()
    done = asyncio.run(go())
    end = os.times()
    return done, (end.user - start.user) + (end.system - start.system)


async def _connect_all(port: int, fleet: _Fleet) -> list[_Device]:
    held: list[_Device] = []
    sem = asyncio.Semaphore(64)

    async def one(index: int) -> None:
        async with sem:
            for _ in range(5):
                try:
                    device = await _connect(port, fleet, index, True)
                except OSError:
                    device = None
                if device is not None:
                    held.append(device)
                    return

    await asyncio.gather(*(one(i) for i in range(len(fleet.devices))))
    return held


async def _disconnect_all(held: list[_Device], linger: float = 0.0) -> None:
    for device in held:
        device.transport.close()
    # The worker notices, records presence, lets go; after ``linger`` it also drops the keys
    # of the devices that did not come back (DeviceServerConfig.key_cache_linger).
    await asyncio.sleep(3 + linger)


WARM_UP = 100  # devices in the churn before the baseline is read


def _hold_main(args: tuple[Any, ...]) -> list[tuple[str, int, int]]:
    """Connect every device and keep it, disconnect all; ``churns`` times.

    Returns (phase, connected devices, worker RSS KB): at start, after a warm-up churn of
    ``WARM_UP`` devices (what a first connection initialises once, lazily, is not a leak; this
    is the baseline), then held and after disconnecting, per churn."""
    from fermion.cloud.devices.service import use_uvloop

    port, pems, server_der, pid, churns, linger = args
    fleet = _load_fleet(pems, server_der)
    warm = _load_fleet(pems[:WARM_UP], server_der)
    use_uvloop()

    async def go() -> list[tuple[str, int, int]]:
        phases = [("start", 0, rss_kb(pid))]
        await _disconnect_all(await _connect_all(port, warm))
        phases.append((f"baseline ({WARM_UP} warm-up)", 0, rss_kb(pid)))
        for round_ in range(1, churns + 1):
            held = await _connect_all(port, fleet)
            await asyncio.sleep(2)
            phases.append((f"held #{round_}", len(held), rss_kb(pid)))
            await _disconnect_all(held, linger)
            del held
            phases.append((f"after disconnect #{round_}", 0, rss_kb(pid)))
        return phases

    return asyncio.run(go())


# -- the I/O floor: the handshake's socket traffic without its work -------------------------------

# Bytes each side writes, in order: nonce, key block, reply, the device's Hello frame, the server's.
_SERVER_WRITES = (40, 384, 18)
_DEVICE_WRITES = (256, 34)


class _Dance(asyncio.Protocol):
    """Writes ``writes[i]`` bytes once ``reads[i]`` more bytes have arrived (``reads[0]`` may
    be 0: write at once), like one side of a handshake with no crypto, CoAP or store."""

    __slots__ = ("done", "pending", "reads", "step", "transport", "writes")

    def __init__(self, reads: tuple[int, ...], writes: tuple[int, ...], done: Any = None) -> None:
        self.reads, self.writes, self.done = reads, writes, done
        self.step = 0
        self.pending = reads[0]
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("peername")
        if self.pending == 0:
            self._advance()

    def data_received(self, data: bytes) -> None:
        self.pending -= len(data)
        if self.pending <= 0:
            self._advance()

    def _advance(self) -> None:
        if self.step < len(self.writes):
            self.transport.write(b"\0" * self.writes[self.step])
        self.step += 1
        if self.step < len(self.reads):
            self.pending += self.reads[self.step]
        elif self.done is not None:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(False)


def _floor_server(port: int, ready: Any) -> None:
    from fermion.cloud.devices.service import use_uvloop

    use_uvloop()
    reads = (0, 256, 34)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(
            lambda: _Dance(reads, _SERVER_WRITES), "127.0.0.1", port, backlog=4096
        )
        ready.set()
        await asyncio.sleep(3600)

    asyncio.run(serve())


def _floor_main(args: tuple[Any, ...]) -> tuple[int, float]:
    from fermion.cloud.devices.service import use_uvloop

    port, seconds, concurrency = args
    use_uvloop()
    reads = (40, 384, 18)

    async def go() -> int:
        loop = asyncio.get_running_loop()
        done = 0
        end = time.monotonic() + seconds

        async def one() -> None:
            nonlocal done
            while time.monotonic() < end:
                finished: asyncio.Future[bool] = loop.create_future()
                device = _Dance(reads, _DEVICE_WRITES, finished)
                await loop.create_connection(lambda d=device: d, "127.0.0.1", port)
                if await finished:  # not `done += await ...`: that reads done before the await
                    done += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
        return done

    start = os.times()
    done = asyncio.run(go())
    end = os.times()
    return done, (end.user - start.user) + (end.system - start.system)


def io_floor(context: Any, seconds: float, loadgens: int, concurrency: int) -> float:
    """Server CPU-seconds per connection for the handshake's socket traffic alone."""
    port = free_port()
    ready = context.Event()
    server = context.Process(target=_floor_server, args=(port, ready), daemon=True)
    server.start()
    try:
        ready.wait(30)
        cpu0 = cpu_seconds(server.pid)
        with context.Pool(loadgens) as procs:
            results = procs.map(_floor_main, [(port, seconds, concurrency)] * loadgens)
        return (cpu_seconds(server.pid) - cpu0) / max(1, sum(r[0] for r in results))
    finally:
        server.kill()
        server.join()


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
    parser.add_argument(
        "--workers", default="1,2", help='worker counts to measure, e.g. 1 ("" skips the rates)'
    )
    parser.add_argument("--churns", type=int, default=2, help="connect/disconnect rounds")
    options = parser.parse_args()
    # As `fermion serve --device-workers N` does: workers count in prometheus-client's
    # multiprocess mode (set before anything imports prometheus-client).
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="fermion-bench-metrics-")
    )

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

    per = max(1, options.concurrency // options.loadgens)
    floor = io_floor(context, min(options.seconds, 5.0), options.loadgens, per)
    bound = (1 / top) / (1 / top + floor)
    print(
        f"I/O floor (the same socket traffic, no crypto, on uvloop): {floor * 1e6:.0f} us of "
        f"server CPU per connection; a server doing nothing else than RSA and that traffic "
        f"would reach {bound:.2f} x ceiling",
        flush=True,
    )

    for workers in [int(w) for w in options.workers.split(",") if w]:
        port = free_port()
        config = DeviceServerConfig(
            port=port,
            failure_limit=10**9,
            max_handshakes=100_000,
            # every load generator connects from 127.0.0.1: no per-address share
            max_handshakes_per_address=100_000,
            max_handshakes_per_prefix=100_000,
        )
        pool = WorkerPool(url, config, workers)
        pool.start()
        try:
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
                f"load generator CPU {cpu / options.seconds:.2f} cores "
                f"({cpu * 1e6 / max(done, 1):.0f} us per handshake)",
                flush=True,
            )
        finally:
            pool.stop()

    if options.hold:
        port = free_port()
        config = DeviceServerConfig(
            port=port,
            failure_limit=10**9,
            max_handshakes=100_000,
            max_handshakes_per_address=100_000,
            max_handshakes_per_prefix=100_000,
            idle_timeout=3600,
        )
        pool = WorkerPool(url, config, 1)
        pool.start()
        try:
            pid = pool.processes[0].pid
            time.sleep(1)
            with context.Pool(1) as procs:
                phases = procs.apply(
                    _hold_main,
                    (
                        (
                            port,
                            pems[: options.hold],
                            server_der,
                            pid,
                            options.churns,
                            config.key_cache_linger,
                        ),
                    ),
                )
            start, base = phases[0][2], phases[1][2]
            print(
                "churn, one worker (RSS of the worker process; ratios to the baseline after "
                "the warm-up, and to the RSS at start):",
                flush=True,
            )
            for name, count, rss in phases:
                line = (
                    f"  {name:<24} {rss / 1024:7.1f} MB = {rss / base:.2f} x baseline"
                    f" ({rss / start:.2f} x start)"
                )
                if count:
                    line += (
                        f"; {count} devices connected, "
                        f"{(rss - base) / count:.1f} KB per device over baseline"
                    )
                print(line, flush=True)
        finally:
            pool.stop()


if __name__ == "__main__":
    main()
