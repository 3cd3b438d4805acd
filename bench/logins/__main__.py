"""Other callers during floods of wrong logins (issue #10, item 3), on a real ``fermion serve``.

    python -m bench.logins [--backend sqlite|postgres|both] [--seconds 8] [--floods 50,200]

Starts ``fermion serve`` on loopback (API and device server, one process, over a fresh database
with a user, a token and 3,200 devices), then runs the same measurements in phases: with no
flood (the baseline), then with each flood size N from one address, then from N addresses
(``127.0.x.y``, each a different unknown account, so no login limit applies and every login
wants argon2). A flood sends a wave of N concurrent wrong ``POST /oauth/token`` every second.

Measured in every phase, by callers that are not flooding:

- ``api``: ``GET /v1/user`` with a token, 4 clients back to back;
- ``handshake``: a complete device handshake (nonce to Hello, ``DeviceConnection`` as
  ``bench.handshake.server`` drives it) as a device the server has not seen since it started,
  so its key is not cached and is read from the database, one after another;
- ``login``: a correct password login from another address, one after another; a 503 (argon2
  queue full) is retried after its ``retry_after`` and the wait is counted in its latency.

Printed: p50/p99 per phase, errors (a 5xx or transport error for ``api``, a failed handshake),
and each phase's p50/p99 as a ratio to the same run's baseline (the machine is shared and noisy,
so only ratios of one run compare). PostgreSQL needs ``FERMION_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.handshake.server import _setup_store
from bench.logins import roles
from bench.logins.roles import PASSWORD, Samples
from fermion.cloud import admin
from fermion.cloud.store import Store
from fermion.cloud.store.models import OwnerKind
from fermion.cloud.tokens import TokenOwner, mint
from fermion.keys import generate_device_key, private_key_pem, public_key_der

KEY_POOL = 8  # keys are shared across device ids: what is measured is the id's key lookup
HANDSHAKES_PER_PHASE = 400  # at most; each phase its own devices, never seen before
DEVICES = 8 * HANDSHAKES_PER_PHASE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Phase:
    name: str
    api: Samples
    handshake: Samples
    login: Samples
    flood: Samples


class Bench:
    def __init__(
        self,
        base: str,
        device_port: int,
        token: str,
        email: str,
        pems: list[tuple[str, bytes]],
        server_der: bytes,
    ) -> None:
        self.base = base
        self.device_port = device_port
        self.token = token
        self.email = email
        self.pems = pems
        self.server_der = server_der
        self.next_device = 0
        self.net = 10  # the second octet of the flood's addresses, one per phase
        self.pool = ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn"))

    def phase(self, name: str, seconds: float, size: int = 0, spread: bool = False) -> Phase:
        start = time.time() + 1.0  # time for the pool's processes to be ready
        end = start + seconds
        first, self.next_device = self.next_device, self.next_device + HANDSHAKES_PER_PHASE
        jobs = {
            "api": self.pool.submit(roles.run, "api", self.base, self.token, start, end),
            "handshake": self.pool.submit(
                roles.run,
                "handshake",
                self.device_port,
                self.pems,
                self.server_der,
                first,
                start,
                end,
            ),
            "login": self.pool.submit(roles.run, "login", self.base, self.email, start, end),
        }
        # The warm-up floods with one login, so that all four processes exist before the
        # baseline; each phase floods from other addresses than the one before.
        if size:
            self.net += 1
            jobs["flood"] = self.pool.submit(
                roles.run, "flood", self.base, size, spread, start, end, self.net
            )
        done = {what: job.result() for what, job in jobs.items()}
        return Phase(
            name, done["api"], done["handshake"], done["login"], done.get("flood", Samples())
        )


async def _prepare(url: str, data_dir: Path) -> tuple[str, str, list[tuple[str, bytes]], bytes]:
    keys = [generate_device_key() for _ in range(KEY_POOL)]
    pems = [private_key_pem(k) for k in keys]
    ids = [secrets.token_hex(12) for _ in range(DEVICES)]
    devices = [(d, public_key_der(keys[i % KEY_POOL].public_key())) for i, d in enumerate(ids)]
    server_der = await _setup_store(url, devices)
    store = Store(url)
    email = "bench-logins@example.com"
    user = await admin.create_user(store, email, PASSWORD)
    async with store.write() as session:
        minted = await mint(
            session,
            TokenOwner(OwnerKind.USER, user_id=user.id),
            client_name="bench",
            expires_in=None,
            actor=f"user:{email}",
        )
    await store.close()
    return (
        email,
        minted.access_token,
        [(d, pems[i % KEY_POOL]) for i, d in enumerate(ids)],
        server_der,
    )


def _serve(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    port, device_port = _free_port(), _free_port()
    env = {**os.environ, "FERMION_DATABASE_URL": url}
    log = (data_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fermion.cli.main",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--device-port",
            str(device_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"fermion serve exited; see {data_dir / 'serve.log'}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/server-keys", timeout=2)
            return process, port, device_port
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("fermion serve did not start")


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_backend(backend: str, seconds: float, floods: list[int]) -> list[Phase]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-logins-{backend}-"))
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'fermion.db'}"
    else:
        admin_url = os.environ.get("FERMION_TEST_POSTGRES_URL")
        if not admin_url:
            raise SystemExit("postgres: set FERMION_TEST_POSTGRES_URL")
        name = f"bench_logins_{secrets.token_hex(4)}"
        asyncio.run(_pg(admin_url, f'CREATE DATABASE "{name}"'))
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"

        def drop() -> None:
            asyncio.run(_pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    try:
        email, token, pems, server_der = asyncio.run(_prepare(url, tmp))
        process, port, device_port = _serve(url, tmp)
        try:
            bench = Bench(f"http://127.0.0.1:{port}", device_port, token, email, pems, server_der)
            bench.phase("warm-up", 2, 1)
            phases = [bench.phase("baseline", seconds)]
            for size in floods:
                phases.append(bench.phase(f"{size} from 1 address", seconds, size))
                phases.append(bench.phase(f"{size} from {size} addresses", seconds, size, True))
            phases.append(bench.phase("baseline again", seconds))
            bench.pool.shutdown()
            log = (tmp / "serve.log").read_text(errors="replace")
            if "QueuePool limit" in log or "Traceback" in log:
                print(f"  ! the server logged errors: see {tmp / 'serve.log'}")
            return phases
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        drop()


def report(backend: str, phases: list[Phase]) -> None:
    base = phases[0]
    print(f"\n{backend}: other callers during waves of wrong logins (one wave a second)")
    header = f"  {'phase':<26}"
    for what in ("api", "handshake", "login"):
        header += f" {what + ' p50/p99 ms':>20} {'x base':>11} {'err':>4}"
    print(header + "  flood replies")
    for phase in phases:
        line = f"  {phase.name:<26}"
        for what in ("api", "handshake", "login"):
            s, b = getattr(phase, what), getattr(base, what)
            p50, p99 = s.pct(0.5), s.pct(0.99)
            ratio = f"{p50 / b.pct(0.5):.2f}/{p99 / b.pct(0.99):.2f}"
            line += f" {p50:9.1f}/{p99:<10.1f} {ratio:>11} {s.errors:>4}"
        flood = " ".join(f"{k}:{v}" for k, v in sorted(phase.flood.replies.items())) or "-"
        n = [len(getattr(phase, what).latencies) for what in ("api", "handshake", "login")]
        print(f"{line}  {flood} (n={n[0]}/{n[1]}/{n[2]})")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.logins", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--floods", default="50,200")
    args = parser.parse_args()
    floods = [int(n) for n in args.floods.split(",") if n]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"bench.logins: {os.cpu_count()} cores, {args.seconds:g} s per phase")
    for backend in backends:
        report(backend, run_backend(backend, args.seconds, floods))


if __name__ == "__main__":
    main()
