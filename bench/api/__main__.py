"""API benchmark: key uploads and device reads against a real ``fermion serve``.

    python -m bench.api [--backend sqlite|postgres|both] [--clients 50] [--seconds 10]
                        [--workers 1,2] [--rate 1000]

Starts ``fermion serve --workers W`` on loopback over a fresh database (for each W asked),
imports the devices, then runs three workloads with N concurrent keep-alive HTTP/1.1 clients.
Closed loop (always): each client sends its next request as soon as the last reply arrived, so
the rate is the most the server does with N requests in flight (and by Little's law p50 is
about N / rate). Open loop (``--rate R``, uploads and reads): R requests/s offered, spread evenly
over the N connections on a fixed schedule; latency is measured from the time a request was
*scheduled*, so a request that had to wait for its connection's previous reply is charged for
the wait (no coordinated omission):

- ``upload``: ``POST /v1/provisioning/:id`` (form, as particle-cli sends it) with a new RSA public
  key for one of the client's own devices: every request appends a key version and its audit
  event in one transaction.
- ``read``: ``GET /v1/devices/:id``.
- ``floor``: a path no route matches (HTTP parsing, middleware, the error handler; no
  database): the baseline the others' CPU per request is compared with, in the same run.

Reports throughput, p50/p99 latency, and the CPU the server (the supervisor and every worker
process) and the load generator used over the measured window (the generator shares the
machine's cores with the server, so its share is printed to show how much of the machine the
numbers leave to the server). PostgreSQL needs
``FERMION_TEST_POSTGRES_URL`` (or ``--postgres-url``): a URL of a role that may create databases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from fermion.cloud import admin
from fermion.cloud.store import Store
from fermion.keys import Algorithm, generate_device_key, public_key_pem

DEVICES_PER_CLIENT = 20
KEY_POOL = 64
PASSWORD = "bench-password-1"


@dataclass
class Result:
    backend: str
    workers: int
    workload: str
    mode: str  # "closed" or "open R/s"
    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # cores used on average over the window
    generator_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def server_ms_per_request(self) -> float:
        """Server CPU per request: what the machine's load does not change much."""
        return self.server_cpu * self.seconds / max(1, self.requests) * 1000


# --- the server ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, database_url: str, data_dir: Path, workers: int) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.port = _free_port()
        env = {**os.environ, "FERMION_DATABASE_URL": database_url}
        self.log = (data_dir / f"serve-{workers}.log").open("wb")
        profile = os.environ.get("FERMION_BENCH_PROFILE")  # a path: run the server under cProfile
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        self.process = subprocess.Popen(
            [
                sys.executable,
                *prefix,
                "-m",
                "fermion.cli.main",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--device-port",
                "0",
                "--workers",
                str(workers),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"fermion serve exited; see {data_dir / 'serve.log'}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/v1/server-keys", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("fermion serve did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its descendants (all threads)."""
        stats: dict[int, list[str]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    text = (entry / "stat").read_text()
                except OSError:
                    continue
                stats[int(entry.name)] = text.rsplit(")", 1)[1].split()
        family, grew = {self.process.pid}, True
        while grew:
            more = {pid for pid, f in stats.items() if int(f[1]) in family} - family
            family |= more
            grew = bool(more)
        ticks = sum(int(stats[p][11]) + int(stats[p][12]) for p in family if p in stats)
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# --- a minimal keep-alive HTTP/1.1 client (cheap, so the generator leaves CPU to the server) ---


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _request(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {token}",
        f"Content-Length: {len(body)}",
    ]
    if body:
        lines.append("Content-Type: application/x-www-form-urlencoded")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- workloads ----------------------------------------------------------------------------


def upload_requests(
    token: str, pid: int, devices: list[str], pems: list[str]
) -> Callable[[int, int], bytes]:
    def make(client: int, n: int) -> bytes:
        slot = n % DEVICES_PER_CLIENT
        device = devices[client * DEVICES_PER_CLIENT + slot]
        # The same device gets a different key each round, so every upload writes a version.
        key = pems[(n // DEVICES_PER_CLIENT + client + slot) % len(pems)]
        body = urlencode(
            {
                "deviceID": device,
                "publicKey": key,
                "filename": "cli",
                "order": f"manual_{n}",
                "algorithm": "rsa",
                "product_id": str(pid),
            }
        ).encode()
        return _request("POST", f"/v1/provisioning/{device}", token, body)

    return make


def floor_requests(token: str) -> Callable[[int, int], bytes]:
    """A path no route matches: HTTP, middleware and the error handler, no database."""
    raw = _request("GET", "/v1/no-such-endpoint", token)
    return lambda client, n: raw


def read_requests(token: str, devices: list[str]) -> Callable[[int, int], bytes]:
    def make(client: int, n: int) -> bytes:
        device = devices[(client * DEVICES_PER_CLIENT + n) % len(devices)]
        return _request("GET", f"/v1/devices/{device}", token)

    return make


async def run_load(
    server: Server,
    make: Callable[[int, int], bytes],
    expect: int,
    clients: int,
    seconds: float,
    warmup: float,
    rate: float | None = None,
) -> tuple[list[float], int, float, float, float]:
    conns = [Connection(server.port) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter()
    start_at = begin + warmup
    stop_at = start_at + seconds
    marks: dict[str, float] = {}

    async def closed(i: int) -> None:
        nonlocal errors
        n = 0
        conn = conns[i]
        while True:
            raw = make(i, n)
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            status = await conn.request(raw)
            t1 = time.perf_counter()
            if t0 >= start_at:
                latencies.append(t1 - t0)
                if status != expect:
                    errors += 1
            n += 1

    async def open_loop(i: int) -> None:
        # Connection i sends every clients/rate seconds, offset so that the connections take
        # turns; a send that is due while the previous reply is still out waits for it, and
        # its latency counts from when it was due.
        nonlocal errors
        assert rate is not None
        interval = clients / rate
        due = begin + interval * i / clients
        n = 0
        conn = conns[i]
        while due < stop_at:
            raw = make(i, n)
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            status = await conn.request(raw)
            t1 = time.perf_counter()
            if due >= start_at:
                latencies.append(t1 - due)
                if status != expect:
                    errors += 1
            n += 1
            due += interval

    async def start_sampling() -> None:
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        marks["server0"], marks["gen0"] = server.cpu_seconds(), time.process_time()

    client = closed if rate is None else open_loop
    await asyncio.gather(start_sampling(), *(client(i) for i in range(clients)))
    # The window ends with the last reply: in the open loop, requests due before the end of the
    # schedule finish late when the server cannot keep up, and the rate is what it managed.
    elapsed = time.perf_counter() - start_at
    server_cpu = (server.cpu_seconds() - marks["server0"]) / elapsed
    gen_cpu = (time.process_time() - marks["gen0"]) / elapsed
    for c in conns:
        c.close()
    return latencies, errors, elapsed, server_cpu, gen_cpu


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# --- one backend --------------------------------------------------------------------------


async def _setup(database_url: str, clients: int) -> tuple[str, int]:
    store = Store(database_url)
    try:
        email = f"bench-{secrets.token_hex(3)}@example.com"
        await admin.create_user(store, email, PASSWORD)
        product = await admin.create_product(store, "Bench", email, "photon")
        return email, product.id
    finally:
        await store.close()


def bench_backend(
    backend: str, database_url: str, data_dir: Path, args: argparse.Namespace, workers: int
) -> list[Result]:
    server = Server(database_url, data_dir, workers)
    try:
        email, pid = asyncio.run(_setup(database_url, args.clients))
        base = f"http://127.0.0.1:{server.port}"
        token = httpx.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "password",
                "username": email,
                "password": PASSWORD,
                "client_id": "particle",
                "client_secret": "particle",
                "expires_in": "0",
            },
        ).json()["access_token"]
        devices = [secrets.token_hex(12) for _ in range(args.clients * DEVICES_PER_CLIENT)]
        imported = httpx.post(
            f"{base}/v1/products/{pid}/devices",
            json={"ids": devices},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        imported.raise_for_status()
        pems = [
            public_key_pem(generate_device_key(Algorithm.RSA).public_key()).decode()
            for _ in range(KEY_POOL)
        ]
        results = []
        # The floor first: the other rows are compared with it.
        workloads: list[tuple[str, Callable[[int, int], bytes], int]] = [
            ("floor", floor_requests(token), 404),
            ("upload", upload_requests(token, pid, devices, pems), 200),
            ("read", read_requests(token, devices), 200),
        ]
        modes: list[float | None] = [None] + ([args.rate] if args.rate else [])
        for name, make, expect in workloads:
            if args.workload not in ("all", name):
                continue
            for rate in modes if name != "floor" else [None]:
                lat, errors, secs, server_cpu, gen_cpu = _run(
                    run_load(server, make, expect, args.clients, args.seconds, args.warmup, rate)
                )
                results.append(
                    Result(
                        backend,
                        workers,
                        name,
                        "closed" if rate is None else f"open {rate:,.0f}/s",
                        args.clients,
                        len(lat),
                        errors,
                        secs,
                        _pct(lat, 0.5),
                        _pct(lat, 0.99),
                        server_cpu,
                        gen_cpu,
                    )
                )
                floor = next((r for r in results if r.workload == "floor"), None)
                print(_row(results[-1], floor), flush=True)
        return results
    finally:
        server.stop()


def _run(coro: Awaitable[tuple[list[float], int, float, float, float]]) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


HEADER = (
    "| backend | workers | workload | load | clients | requests | errors | req/s | p50 ms "
    "| p99 ms | server CPU (cores) | server CPU ms/request | CPU/request vs floor "
    "| generator CPU (cores) |\n"
    "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _row(r: Result, floor: Result | None) -> str:
    ratio = (
        f"{r.server_ms_per_request / floor.server_ms_per_request:.1f}x"
        if floor is not None and floor.server_ms_per_request > 0
        else "-"
    )
    return (
        f"| {r.backend} | {r.workers} | {r.workload} | {r.mode} | {r.clients} | {r.requests} "
        f"| {r.errors} | "
        f"{r.rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.server_cpu:.2f} | "
        f"{r.server_ms_per_request:.2f} | {ratio} | {r.generator_cpu:.2f} |"
    )


def bench_one(backend: str, workers: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fermion-bench-") as tmp:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'fermion.db'}"
            bench_backend(backend, url, Path(tmp), args, workers)
            return
        if not args.postgres_url:
            print("| postgres | skipped: no --postgres-url / FERMION_TEST_POSTGRES_URL |")
            return
        name = f"fermion_bench_{secrets.token_hex(4)}"
        asyncio.run(_pg(args.postgres_url, f'CREATE DATABASE "{name}"'))
        try:
            url = f"{args.postgres_url.rsplit('/', 1)[0]}/{name}"
            bench_backend(backend, url, Path(tmp), args, workers)
        finally:
            asyncio.run(_pg(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--workload", choices=("upload", "read", "floor", "all"), default="all")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--workers",
        default="1",
        help="comma-separated API process counts to measure, e.g. 1,2 (fermion serve --workers)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="also run uploads and reads open-loop at this many requests/s (0: closed loop only)",
    )
    parser.add_argument("--postgres-url", default=os.environ.get("FERMION_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}; load average before the run: {load:.2f}")
    print(HEADER, flush=True)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        for workers in worker_counts:
            bench_one(backend, workers, args)
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
