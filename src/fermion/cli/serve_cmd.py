"""``fermion serve``: migrate the database, then run the cloud's HTTP API.

``--workers N`` (N > 1) runs the API in N processes with uvicorn's own multi-process mode: this
process binds the port once and becomes a supervisor; the workers share that one listening
socket (so an idle worker takes the next connection, where ``SO_REUSEPORT`` would pin each
connection to a process by a hash of its addresses, busy or not), and uvicorn replaces a worker
that dies. Before any worker starts, this process migrates the store and makes the server key
(the database also allows only one current key per algorithm), and it runs the device server
itself, on a thread of its own (``--device-workers 0``) or as its worker pool.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fermion.cloud.settings import DEFAULT_HOST, DEFAULT_PORT, Settings
from fermion.loopback import is_loopback

console = Console(stderr=True, highlight=False)
DEFAULT_DEVICE_PORT = 5683


def safe_url(url: str) -> str:
    """The database URL with any password hidden, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        DEFAULT_HOST
    ),
    port: Annotated[int, typer.Option(help="TCP port of the HTTP API.", min=1, max=65535)] = (
        DEFAULT_PORT
    ),
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Data directory (default: FERMION_HOME or the user's)."),
    ] = None,
    device_port: Annotated[
        int | None,
        # Not "[default: ...]" in the text: Rich reads square brackets as markup and drops them.
        typer.Option(
            help=f"TCP port of the device server (default {DEFAULT_DEVICE_PORT} when free; "
            "0: off).",
            min=0,
        ),
    ] = None,
    device_advertise_host: Annotated[
        str | None,
        typer.Option(
            "--device-advertise-host",
            help=(
                "Host devices should dial for the device server, when not the listen address "
                "(env FERMION_DEVICE_HOST)."
            ),
        ),
    ] = None,
    device_workers: Annotated[
        int,
        typer.Option(
            help="Device server processes sharing the port (0: in the API process).", min=0
        ),
    ] = 0,
    workers: Annotated[
        int,
        typer.Option(help="API processes sharing the HTTP port.", min=1),
    ] = 1,
    metrics_public: Annotated[
        bool,
        typer.Option(
            "--metrics-public",
            help="Serve GET /metrics to any address without a token (default: loopback only, "
            "or FERMION_METRICS_TOKEN as a bearer token).",
        ),
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log one line per HTTP request (off by default: `fermion serve &` would "
            "otherwise write every request into the shell).",
        ),
    ] = False,
) -> None:
    """Run the cloud: REST API on HOST:PORT over the store in the data directory."""
    import uvicorn

    from fermion.cloud.app import create_app
    from fermion.cloud.logconfig import log_config
    from fermion.cloud.store import upgrade

    if workers > 1 or device_workers > 0:
        # Before anything imports prometheus-client: workers inherit it, /metrics adds them up.
        os.environ.setdefault(
            "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="fermion-metrics-")
        )
    settings = Settings.from_env(
        data_dir=data_dir,
        host=host,
        port=port,
        device_host=device_advertise_host,
        metrics_public=metrics_public,
    )
    settings.ensure_data_dir()
    upgrade(settings.database_url)
    _seal_server_keys(settings)
    devices = _device_service(settings, host, device_port, device_workers)
    if not is_loopback(host):
        console.print(f"[yellow]warning:[/] listening on {host}, reachable from other machines")
    console.print(
        f"Fermion cloud on http://{host}:{port}  (data: {settings.data_dir}; "
        f"database: {safe_url(settings.database_url)})"
    )
    if devices is not None:
        console.print(
            f"device server on tcp://{host}:{devices.config.port}"
            + (f" ({device_workers} worker processes)" if device_workers else "")
            + (f", advertised as {settings.device_host}" if settings.device_host else "")
        )
    if workers > 1:
        _serve_workers(settings, devices, workers, access_log)
        return
    uvicorn.run(
        create_app(settings, devices),
        host=host,
        port=port,
        access_log=access_log,
        log_config=log_config(),
        server_header=False,
        proxy_headers=False,
    )


def _seal_server_keys(settings: Settings) -> None:
    """Seal server keys still stored as plain PEM; a wrong key file stops the start here."""
    from fermion.cloud.serverkeys import seal_plaintext_keys
    from fermion.cloud.store import Store

    async def seal() -> int:
        store = Store(settings.database_url)
        try:
            return await seal_plaintext_keys(store)
        finally:
            await store.close()

    sealed = asyncio.run(seal())
    if sealed:
        console.print(f"sealed {sealed} server private key(s) with {settings.secret_key_file}")


def _serve_workers(settings: Settings, devices: Any, workers: int, access_log: bool) -> None:
    """Supervise ``workers`` API processes; the device server runs here, beside them."""
    import uvicorn

    from fermion.cloud.app import WORKER_ENV
    from fermion.cloud.logconfig import log_config
    from fermion.cloud.serverkeys import ensure_server_key
    from fermion.cloud.store import Store

    async def make_server_key() -> None:
        store = Store(settings.database_url)
        try:
            await ensure_server_key(store)
        finally:
            await store.close()

    asyncio.run(make_server_key())
    host = _DeviceHost(settings, devices) if devices is not None else None
    if host is not None:
        host.start()
    try:
        running = devices is not None and devices.running
        os.environ[WORKER_ENV] = json.dumps(
            {
                "settings": {**asdict(settings), "data_dir": str(settings.data_dir)},
                "devices": (
                    {"host": devices.config.host, "port": devices.port} if running else None
                ),
            }
        )
        console.print(f"{workers} API worker processes")
        uvicorn.run(
            "fermion.cloud.app:worker_app",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            access_log=access_log,
            log_config=log_config(),
            server_header=False,
            proxy_headers=False,
        )
    finally:
        if host is not None:
            host.stop()


class _DeviceHost:
    """The device service on an event loop of its own thread, while the main thread supervises
    the API workers."""

    def __init__(self, settings: Settings, devices: Any) -> None:
        self.settings = settings
        self.devices = devices
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="fermion-devices", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.ready.wait()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self.loop is not None and self.stopping is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)

    def _run(self) -> None:
        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        from fermion.cloud.store import Store

        self.stopping = asyncio.Event()
        store = Store(self.settings.database_url)
        try:
            try:
                await self.devices.start(store)
            except BaseException as exc:
                self.error = exc
                return
            finally:
                self.ready.set()
            await self.stopping.wait()
            await self.devices.stop()
        finally:
            await store.close()


def _device_service(settings: Settings, host: str, port: int | None, workers: int) -> Any:
    """The device server to start with the app (None when ``--device-port 0``).

    Without ``--device-port`` the default port is used if it is free; a second ``fermion serve``
    on the machine then runs without a device server instead of failing.
    """
    if port == 0:
        return None
    optional = port is None
    port = DEFAULT_DEVICE_PORT if port is None else port
    from fermion.cloud.devices.limits import DeviceServerConfig
    from fermion.cloud.devices.service import DeviceService

    return DeviceService(
        DeviceServerConfig(host=host, port=port), workers, settings.database_url, optional=optional
    )
