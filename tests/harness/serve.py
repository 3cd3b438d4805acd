"""One launcher of ``fermion serve`` for every suite, and the ``Cloud`` the suites build on.

The server is a real process on loopback, as an operator runs it: its own data directory (which
is also its ``FERMION_HOME``), its own ephemeral ports, its output in ``serve.log`` there. It is
ready when ``GET /v1/server-keys`` answers 200 (or another ``ready_path``), and stops with
SIGTERM (uvicorn's clean shutdown, which also stops ``--workers``), then SIGKILL for the whole
process group.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from fermion.cloud.settings import Settings, sqlite_url
from fermion.cloud.store import Store
from harness.backends import fresh_database
from harness.net import free_port
from harness.processes import kill_group, stop_process

T = TypeVar("T")

# ``fermion`` as this interpreter runs it (the venv's, whatever is on PATH).
FERMION = [sys.executable, "-m", "fermion.cli.main"]

# The clients' proxies must not reroute anything a test sends to loopback.
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")
# Where the test process itself keeps things (conftest's FERMION_HOME, say): a server is told
# its own places instead. Other FERMION_* variables (FERMION_METRICS_TOKEN, ...) are inherited,
# so a test can set them with monkeypatch before it starts a server.
_PLACE_VARS = ("FERMION_HOME", "FERMION_DATABASE_URL", "FERMION_API_URL", "FERMION_PROFILE")

START_ATTEMPTS = 3  # a port taken between free_port() and the bind: try new ports
READY_WITHIN = 120.0  # bounds a hang; asserts no speed (the machine is shared)


@dataclass
class Server:
    """One ``fermion serve`` subprocess.

    ``database_url`` None: serve's own SQLite file in ``data_dir``. ``device_server``: run the
    device server on a port of its own (``device_port``); without it, and without a
    ``--device-port`` in ``extra_args``, the server runs none (never the machine's 5683).
    ``extra_env``: variables to set (or, with None, to remove) in the server's environment.
    """

    database_url: str | None
    data_dir: Path
    extra_args: list[str] | None = None
    device_server: bool = False
    extra_env: dict[str, str | None] = field(default_factory=dict)
    ready_path: str = "/v1/server-keys"
    stop_signal: int = signal.SIGTERM
    log_name: str = "serve.log"
    port: int = 0
    device_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.extra_args = list(self.extra_args or [])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``base_url``, by the name the compat, console and repair suites use."""
        return self.base_url

    @property
    def store_url(self) -> str:
        """The database the server uses (what a test opens a ``Store`` on)."""
        return self.database_url or sqlite_url(self.data_dir / "fermion.db")

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    def env(self) -> dict[str, str]:
        """The server's environment (also right for other ``fermion`` commands on its data)."""
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k not in _PLACE_VARS}
        env["FERMION_HOME"] = str(self.data_dir)
        if self.database_url:
            env["FERMION_DATABASE_URL"] = self.database_url
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def argv(self) -> list[str]:
        args = [*FERMION, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        # On for tests: several check the log for " 500 " (a person's shell has it off by default).
        args.append("--access-log")
        assert self.extra_args is not None
        if self.device_server:
            args += ["--device-port", str(self.device_port)]
        elif "--device-port" not in self.extra_args:
            args += ["--device-port", "0"]
        return [*args, *self.extra_args]

    def start(self) -> None:
        """Start (or, after ``stop`` or ``kill``, restart) on new ports; return once ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port()
            self.device_port = free_port() if self.device_server else 0
            # Appended: a restarted server's log follows the first one's.
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self.argv(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env(),
                    cwd=self.data_dir,
                    # Its own process group, so a stop that times out also ends its workers.
                    start_new_session=True,
                )
            if self._wait_ready():
                return
            self.stop()
        raise AssertionError(f"fermion serve did not start:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """``stop_signal`` (SIGTERM: uvicorn's clean shutdown) and wait; SIGKILL for the
        process group if it does not end in time."""
        if self.process is not None:
            stop_process(self.process, self.stop_signal)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.process is not None
        kill_group(self.process)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 20_000) -> str:
        return self.log()[-chars:] or "(no log)"

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


@contextmanager
def running_server(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    extra_args: list[str] | None = None,
    **options: Any,
) -> Iterator[Server]:
    """A ``fermion serve`` on a fresh database of ``backend``, stopped and dropped after;
    ``extra_args`` and ``options`` (``device_server=True``, ...) as ``Server`` takes them."""
    tmp = tmp_path_factory.mktemp(f"{name}-{backend}")
    url, drop = fresh_database(backend, tmp)
    srv = Server(url, tmp, extra_args, **options)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


@dataclass
class Cloud:
    """A running cloud; each suite's ``Cloud`` adds its own shortcuts on top."""

    server: Server

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def http(self, token: str | None = None) -> httpx.Client:
        return self.server.http(token)

    def run(self, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await op(store, *args)`` on a ``Store`` of the server's database (``fermion.cloud
        .admin``'s functions, a test's own query), from sync test code."""

        async def go() -> T:
            store = Store(self.server.store_url)
            try:
                return await op(store, *args)
            finally:
                await store.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(go())
        # A loop already runs in this thread (Playwright's, say): run on a thread of its own.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, go()).result()

    @asynccontextmanager
    async def in_process(self, **app_options: Any) -> AsyncIterator[httpx.AsyncClient]:
        """The cloud's app in this process (its lifespan run) over the server's database and
        data directory, built with ``create_app(**app_options)``: for what only a test can
        inject, such as the token ``clock``. Requests go to it, not to the server process."""
        # Here, not at the top: most suites never build the app in process.
        from fermion.cloud.app import create_app

        settings = Settings.from_env(data_dir=self.server.data_dir, environ=self.server.env())
        app = create_app(settings, **app_options)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=self.base_url) as client:
                yield client
