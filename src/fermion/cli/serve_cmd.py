"""``fermion serve``: migrate the database, then run the cloud's HTTP API."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fermion.cloud.settings import DEFAULT_HOST, DEFAULT_PORT, Settings

console = Console(stderr=True, highlight=False)
DEFAULT_DEVICE_PORT = 5683


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        typer.Option(help="TCP port of the device server [default: 5683] (0: off).", min=0),
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
) -> None:
    """Run the cloud: REST API on HOST:PORT over the store in the data directory."""
    import uvicorn

    from fermion.cloud.app import create_app
    from fermion.cloud.logconfig import log_config
    from fermion.cloud.store import upgrade

    settings = Settings.from_env(
        data_dir=data_dir, host=host, port=port, device_host=device_advertise_host
    )
    settings.ensure_data_dir()
    upgrade(settings.database_url)
    devices = _device_service(settings, host, device_port, device_workers)
    if not _is_loopback(host):
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
    uvicorn.run(
        create_app(settings, devices),
        host=host,
        port=port,
        log_config=log_config(),
        server_header=False,
        proxy_headers=False,
    )


def _device_service(settings: Settings, host: str, port: int | None, workers: int) -> Any:
    """The device server to start with the app (None when ``--device-port 0``).

    Without ``--device-port`` the default port is used if it is free; a second ``fermion serve``
    on the machine then runs without a device server instead of failing.
    """
    if port == 0:
        return None
    optional = port is None
    port = DEFAULT_DEVICE_PORT if port is None else port
    if workers > 0:
        import os
        import tempfile

        # Before anything imports prometheus-client: workers inherit it, /metrics adds them up.
        os.environ.setdefault(
            "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="fermion-metrics-")
        )
    from fermion.cloud.devices.limits import DeviceServerConfig
    from fermion.cloud.devices.service import DeviceService

    return DeviceService(
        DeviceServerConfig(host=host, port=port), workers, settings.database_url, optional=optional
    )
