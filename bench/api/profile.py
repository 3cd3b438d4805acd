"""Profile key uploads in-process: the ASGI app called directly, no sockets, under cProfile.

    python -m bench.api.profile [--requests 2000] [--workload upload|read|floor] [--sort tottime]

Builds the app exactly as ``fermion serve`` does over a fresh SQLite file, imports devices,
then calls the app with raw ASGI messages (the same bytes ``bench.api`` sends) one at a time,
so the profile holds only the server's own work. Prints the wall time per request without the
profiler first, then the profile of a second batch.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fermion.cloud import admin
from fermion.cloud.app import create_app
from fermion.cloud.settings import Settings
from fermion.cloud.store import Store, upgrade_async
from fermion.cloud.store.models import OwnerKind, User
from fermion.cloud.tokens import TokenOwner, mint
from fermion.keys import Algorithm, generate_device_key, public_key_pem

DEVICES = 200


async def _call(app: Any, method: str, path: str, token: str, body: bytes = b"") -> int:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if body:
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif status >= 400 and message.get("body"):
            print(message["body"][:300])

    await app(scope, receive, send)
    return status


async def _setup(url: str) -> tuple[str, int, list[str]]:
    store = Store(url)
    try:
        email = f"prof-{secrets.token_hex(3)}@example.com"
        await admin.create_user(store, email, None)
        product = await admin.create_product(store, "Prof", email, "photon")
        async with store.write() as session:
            user_id = (await session.execute(User.__table__.select())).first().id  # type: ignore[union-attr]
            minted = await mint(
                session,
                TokenOwner(OwnerKind.USER, user_id=user_id),
                client_name="particle",
                expires_in=0,
                actor=f"user:{email}",
            )
        devices = [secrets.token_hex(12) for _ in range(DEVICES)]
        return minted.access_token, product.id, devices
    finally:
        await store.close()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fermion-prof-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'fermion.db'}"
        await upgrade_async(url)
        token, pid, devices = await _setup(url)
        app = create_app(Settings(data_dir=Path(tmp), database_url=url))
        pems = [
            public_key_pem(generate_device_key(Algorithm.RSA).public_key()).decode()
            for _ in range(32)
        ]
        async with app.router.lifespan_context(app):
            for n, device in enumerate(devices):  # create them (first upload of each)
                method, path, body = _upload(device, pems[n % 32], pid, n)
                assert await _call(app, method, path, token, body) == 200

            def request(n: int) -> tuple[str, str, bytes]:
                device = devices[n % DEVICES]
                if args.workload == "upload":
                    return _upload(device, pems[(n // DEVICES + n) % 32], pid, n)
                if args.workload == "read":
                    return "GET", f"/v1/devices/{device}", b""
                return "GET", "/v1/no-such-endpoint", b""

            expect = 404 if args.workload == "floor" else 200
            # Built up front: the timings are the server's work only.
            batches = [
                [request(n + offset) for n in range(args.requests)] for offset in (0, args.requests)
            ]
            prof = None
            for rnd, batch in zip(("timed", "profiled"), batches, strict=True):
                prof = cProfile.Profile() if rnd == "profiled" else None
                t0, c0 = time.perf_counter(), time.process_time()
                if prof:
                    prof.enable()
                for method, path, body in batch:
                    status = await _call(app, method, path, token, body)
                    assert status == expect, status
                if prof:
                    prof.disable()
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                print(
                    f"{rnd}: {dt / args.requests * 1000:.3f} ms/request wall, "
                    f"{cpu / args.requests * 1000:.3f} ms/request CPU ({args.workload})"
                )
            assert prof is not None
            stats = pstats.Stats(prof)
            if args.out:
                stats.dump_stats(args.out)
            stats.sort_stats(args.sort).print_stats(args.top)


def _upload(device: str, pem: str, pid: int, n: int) -> tuple[str, str, bytes]:
    body = urlencode(
        {
            "deviceID": device,
            "publicKey": pem,
            "filename": "cli",
            "order": f"manual_{n}",
            "algorithm": "rsa",
            "product_id": str(pid),
        }
    ).encode()
    return "POST", f"/v1/provisioning/{device}", body


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api.profile")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workload", choices=("upload", "read", "floor"), default="upload")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", help="write the raw profile here (for snakeviz etc.)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
