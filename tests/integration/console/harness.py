"""A real ``fermion serve`` on an ephemeral loopback port, and Debian's Chromium to drive it.

The server runs as its own process over a SQLite file in a fresh data directory. People,
products and clients are made with the same functions ``fermion admin`` uses; devices, keys,
claims and tokens through the REST API, as the CLI would. What a device does on the wire
(presenting a key, proving possession, reconnecting) is written with the device server's own
store functions until simulated devices are driven against the running server here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from fermion.cloud.settings import sqlite_url
from fermion.cloud.store import Store, upgrade
from fermion.keys import Algorithm, LoadedKey, generate_device_key, load_key, public_key_pem

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "docs" / "images"
# Set by `make screenshots`: only then do the browser tests write docs/images, so a test run
# leaves the checkout as it found it.
SCREENSHOTS = os.environ.get("FERMION_SCREENSHOTS") == "1"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync test code, even while Playwright's own loop
    lives in this thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Device:
    id: str
    key: LoadedKey

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint.sha256


@dataclass
class Cloud:
    home: Path
    url: str
    process: subprocess.Popen[bytes]
    database_url: str
    device_port: int = 0
    product: str = "console-fleet"
    product_id: int = 0
    client_id: str = ""
    client_secret: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    def store(self) -> Store:
        return Store(self.database_url)

    async def _with_store(self, op: Any, *args: Any) -> Any:
        store = self.store()
        try:
            return await op(store, *args)
        finally:
            await store.close()

    def admin(self, op: Any, *args: Any) -> Any:
        return run_async(self._with_store(op, *args))

    # --- REST, as the CLI would call it --------------------------------------------------------

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def token(self, email: str, password: str = PASSWORD) -> str:
        if email not in self.tokens:
            with self.http() as c:
                r = c.post(
                    "/oauth/token",
                    data={
                        "grant_type": "password",
                        "username": email,
                        "password": password,
                        "client_id": "particle",
                        "client_secret": "particle",
                    },
                )
                r.raise_for_status()
                self.tokens[email] = r.json()["access_token"]
        return self.tokens[email]

    def api(self, email: str) -> httpx.Client:
        return self.http(self.token(email))

    def provision(
        self, owner: str, device_id: str, name: str | None = None, key: LoadedKey | None = None
    ) -> Device:
        """A product device with ``key`` (default: a fresh one), by ``POST /v1/provisioning``."""
        if key is None:
            key = load_key(public_key_pem(generate_device_key(Algorithm.RSA).public_key()), "new")
        with self.api(owner) as c:
            r = c.post(
                f"/v1/provisioning/{device_id}",
                data={
                    "deviceID": device_id,
                    "publicKey": public_key_pem(key.public).decode(),
                    "algorithm": "rsa",
                    "product_id": self.product,
                },
            )
            assert r.status_code == 200, r.text
            if name:
                r = c.put(f"/v1/devices/{device_id}", data={"name": name})
                assert r.status_code == 200, r.text
        return Device(device_id, key)

    def claim_for_customer(self, email: str, device_id: str) -> None:
        """The seed's two-legged claim: a customer token by client credentials, then claim."""
        with self.http() as c:
            r = c.post(
                "/oauth/token",
                auth=(self.client_id, self.client_secret),
                data={"grant_type": "client_credentials", "scope": f"customer={email}"},
            )
            assert r.status_code == 200, r.text
            customer_token = r.json()["access_token"]
            r = c.post(
                "/v1/devices",
                data={"id": device_id},
                headers={"Authorization": f"Bearer {customer_token}"},
            )
            assert r.status_code == 200, r.text

    def device_json(self, owner: str, device_id: str) -> dict[str, Any]:
        with self.api(owner) as c:
            r = c.get(f"/v1/devices/{device_id}")
            assert r.status_code == 200, r.text
            return r.json()

    def candidates(self, owner: str, device_id: str) -> list[dict[str, Any]]:
        with self.api(owner) as c:
            r = c.get(f"/v1/devices/{device_id}/keys/candidates")
            assert r.status_code == 200, r.text
            return r.json()["candidates"]

    def audit(self, owner: str, **params: str) -> list[dict[str, Any]]:
        with self.api(owner) as c:
            r = c.get("/v1/audit", params={"product_id": self.product, **params})
            assert r.status_code == 200, r.text
            return r.json()["events"]


def start_cloud(home: Path, database_url: str | None = None) -> Cloud:
    """``fermion serve`` over ``database_url`` (default: a SQLite file in ``home``)."""
    home.mkdir(parents=True, exist_ok=True)
    database_url = database_url or sqlite_url(home / "fermion.db")
    upgrade(database_url)
    port, device_port = free_port(), free_port()
    env = {**os.environ, "FERMION_HOME": str(home), "FERMION_DATABASE_URL": database_url}
    log = (home / "serve.log").open("wb")
    serve = ["serve", "--port", str(port), "--device-port", str(device_port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "fermion.cli.main", *serve],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    cloud = Cloud(
        home=home,
        url=f"http://127.0.0.1:{port}",
        process=process,
        database_url=database_url,
        device_port=device_port,
    )
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"fermion serve exited:\n{(home / 'serve.log').read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(cloud.url + "/console/login", timeout=2).status_code == 200:
                return cloud
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"fermion serve did not start:\n{(home / 'serve.log').read_text()}")
        time.sleep(0.2)


def stop_cloud(cloud: Cloud) -> None:
    cloud.process.terminate()
    try:
        cloud.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        cloud.process.kill()
        cloud.process.wait()
    log = (cloud.home / "serve.log").read_text(errors="replace")
    if "Traceback" in log:
        # Shown with the failing test's output: the server side of what went wrong.
        print(log[-20_000:])


@contextlib.contextmanager
def browser_context(playwright: Any, **options: Any) -> Iterator[Any]:
    """A fresh Chromium profile (its own user-data-dir), so sessions never leak between people."""
    with tempfile.TemporaryDirectory(prefix="fermion-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=options.pop("viewport", {"width": 1280, "height": 900}),
            **options,
        )
        try:
            yield context
        finally:
            context.close()


class Sims:
    """Simulated devices driven by the ``fermion sim`` and ``fermion keys`` commands, in their
    own data directory, pointed at the cloud's device server on loopback."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.home = cloud.home / "sims"
        self.home.mkdir(exist_ok=True)
        self.server_key = self.home / "server.pub.pem"
        with cloud.http() as c:
            keys = c.get("/v1/server-keys").json()["keys"]
        rsa = next(k for k in keys if k["algorithm"] == "rsa" and k["state"] == "current")
        self.server_key.write_text(rsa["public_key"])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.cloud.device_port}"

    def fermion(self, *args: str) -> str:
        env = {**os.environ, "FERMION_HOME": str(self.home)}
        done = subprocess.run(
            [sys.executable, "-m", "fermion.cli.main", *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"fermion {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def create(self, platform: str = "photon") -> str:
        port = str(self.cloud.device_port)
        out = self.fermion(
            "sim",
            "create",
            "--platform",
            platform,
            "--server-key",
            str(self.server_key),
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--json",
        )
        return json.loads(out)[0]["id"]

    def public_key(self, device_id: str) -> LoadedKey:
        """What ``fermion keys save`` reads off the device: the key it holds now."""
        self.fermion("keys", "save", device_id, "--device", device_id, "--force")
        return load_key((self.home / f"{device_id}.pub.pem").read_bytes(), "device.pub.pem")

    def write_server_key(self, device_id: str) -> None:
        port = str(self.cloud.device_port)
        self.fermion(
            "keys",
            "server",
            str(self.server_key),
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--device",
            device_id,
        )

    @contextlib.contextmanager
    def running(self, device_id: str) -> Iterator[None]:
        """``fermion sim run``: the device connects, and retries, until the block ends."""
        env = {**os.environ, "FERMION_HOME": str(self.home)}
        log = (self.home / f"run-{device_id}.log").open("ab")
        args = ["sim", "run", device_id, "--cloud", self.address, "--duration", "600"]
        process = subprocess.Popen(
            [sys.executable, "-m", "fermion.cli.main", *args],
            env=env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def screenshot(page: Any, name: str) -> None:
    """The page as the docs show it, written only by `make screenshots` (see ``SCREENSHOTS``);
    taken all the same otherwise, so that a page that cannot be drawn still fails the test."""
    if SCREENSHOTS:
        page.screenshot(path=str(IMAGES / name), full_page=True)
    else:
        page.screenshot(full_page=True)


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy (the machine is shared and slow)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
