"""``GET /v1/server-keys`` tells devices (and ``keys server``) where the device server is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cloud_harness import Server

Serve = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start servers (on serve's own SQLite file) with these options; stopped after the test."""
    servers: list[Server] = []

    def start(
        *extra: str, device_server: bool = False, env: dict[str, str] | None = None
    ) -> Server:
        # An advertised host in the test's own environment must not decide what is asserted.
        srv = Server(
            None,
            tmp_path / f"s{len(servers)}",
            list(extra),
            device_server=device_server,
            extra_env={"FERMION_DEVICE_HOST": None, **(env or {})},
        )
        servers.append(srv)
        srv.start()
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_server_keys_name_the_device_server_as_configured(serve: Serve) -> None:
    srv = serve(device_server=True)
    body = httpx.get(f"{srv.url}/v1/server-keys").json()
    assert body["device_server"] == {"host": "127.0.0.1", "tcp_port": srv.device_port}
    rsa = next(k for k in body["keys"] if k["algorithm"] == "rsa")
    assert rsa["address"] == {"host": "127.0.0.1", "port": srv.device_port}


def test_advertised_host_is_what_devices_are_told(serve: Serve) -> None:
    srv = serve("--device-advertise-host", "devices.example.test", device_server=True)
    rsa = next(k for k in httpx.get(f"{srv.url}/v1/server-keys").json()["keys"])
    assert rsa["address"] == {"host": "devices.example.test", "port": srv.device_port}


def test_no_device_server_no_address(serve: Serve) -> None:
    srv = serve("--device-port", "0", env={"FERMION_DEVICE_HOST": "devices.example.test"})
    body = httpx.get(f"{srv.url}/v1/server-keys").json()
    assert body["device_server"] is None
    assert all(k["address"] is None for k in body["keys"])
