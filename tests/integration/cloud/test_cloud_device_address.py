"""``GET /v1/server-keys`` tells devices (and ``keys server``) where the device server is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cloud_harness import free_port

FERMION = [sys.executable, "-m", "fermion.cli.main"]
Serve = Callable[..., str]


def _serve(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    log = (tmp / "serve.log").open("wb")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    environ.update(env or {})
    proc = subprocess.Popen(
        [*FERMION, "serve", "--port", str(port), "--data-dir", str(tmp), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environ,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"{url}/v1/server-keys", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"fermion serve did not start:\n{(tmp / 'serve.log').read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    servers: list[Iterator[str]] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> str:
        home = tmp_path / f"s{len(servers)}"
        home.mkdir()
        gen = _serve(home, *extra, env=env)
        servers.append(gen)
        return next(gen)

    yield start
    for gen in servers:
        gen.close()


def test_server_keys_name_the_device_server_as_configured(serve: Serve) -> None:
    device_port = free_port()
    body = httpx.get(f"{serve('--device-port', str(device_port))}/v1/server-keys").json()
    assert body["device_server"] == {"host": "127.0.0.1", "tcp_port": device_port}
    rsa = next(k for k in body["keys"] if k["algorithm"] == "rsa")
    assert rsa["address"] == {"host": "127.0.0.1", "port": device_port}


def test_advertised_host_is_what_devices_are_told(serve: Serve) -> None:
    device_port = free_port()
    url = serve(
        "--device-port", str(device_port), "--device-advertise-host", "devices.example.test"
    )
    rsa = next(k for k in httpx.get(f"{url}/v1/server-keys").json()["keys"])
    assert rsa["address"] == {"host": "devices.example.test", "port": device_port}


def test_no_device_server_no_address(serve: Serve) -> None:
    url = serve("--device-port", "0", env={"FERMION_DEVICE_HOST": "devices.example.test"})
    body = httpx.get(f"{url}/v1/server-keys").json()
    assert body["device_server"] is None
    assert all(k["address"] is None for k in body["keys"])
