"""Login time for an existing vs an unknown account (issue #10, item 5), on a real server.

    python -m bench.logins.probe [--tries 32]

Starts ``fermion serve`` over a fresh SQLite database with 8 users and 8 customers of one
product, then times wrong-password logins in turn: an existing user, an unknown user, an
existing customer, an unknown customer (the product client's credentials), each from a loopback
address that changes every 2 rounds so that no login limit is reached. Prints the medians; the
two of each pair should be alike (before the fix: 154 vs 3.8 ms, customers 284 vs 144 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.logins.__main__ import _free_port
from fermion.cloud import admin
from fermion.cloud.store import Store, upgrade_async

PASSWORD = "right-password-1"


async def _setup(url: str) -> tuple[list[str], list[str], str, str]:
    await upgrade_async(url)
    store = Store(url)
    users = [
        (await admin.create_user(store, f"u{i}@example.com", PASSWORD)).email for i in range(8)
    ]
    product = await admin.create_product(store, "Probe", users[0], "photon")
    client_id, secret = await admin.create_client(store, str(product.id), "server", "server")
    customers = []
    for i in range(8):
        await admin.create_customer(store, str(product.id), f"c{i}@example.com", PASSWORD)
        customers.append(f"c{i}@example.com")
    await store.close()
    return users, customers, client_id, secret


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.logins.probe", description=__doc__)
    parser.add_argument("--tries", type=int, default=32)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    url = f"sqlite+aiosqlite:///{data / 'fermion.db'}"
    users, customers, client_id, secret = asyncio.run(_setup(url))
    port = _free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "fermion.cli.main", "serve", "--port", str(port)),
            *("--data-dir", str(data), "--device-port", "0"),
        ],
        env={**os.environ, "FERMION_DATABASE_URL": url},
        stdout=(data / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/v1/server-keys", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)

        def timed(form: dict[str, str], address: str) -> float:
            transport = httpx.HTTPTransport(local_address=address)
            with httpx.Client(base_url=base, transport=transport, timeout=60) as http:
                started = time.perf_counter()
                reply = http.post("/oauth/token", data=form)
                took = time.perf_counter() - started
            assert reply.status_code == 400, reply.text
            return took

        kinds = ("user, existing", "user, unknown", "customer, existing", "customer, unknown")
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        product_client = {"client_id": client_id, "client_secret": secret}
        for n in range(args.tries):
            address = f"127.0.50.{1 + n // 2}"
            wrong = {"grant_type": "password", "password": "wrong"}
            unknown = f"nobody-{secrets.token_hex(3)}@example.com"
            forms = {
                "user, existing": {**wrong, "username": users[n % 8]},
                "user, unknown": {**wrong, "username": unknown},
                "customer, existing": {**wrong, "username": customers[n % 8], **product_client},
                "customer, unknown": {**wrong, "username": unknown, **product_client},
            }
            for kind in kinds:
                times[kind].append(timed(forms[kind], address))
        for kind in kinds:
            print(f"  {kind:<20} median {statistics.median(times[kind]) * 1000:7.1f} ms")
    finally:
        process.terminate()
        process.wait(timeout=20)


if __name__ == "__main__":
    main()
