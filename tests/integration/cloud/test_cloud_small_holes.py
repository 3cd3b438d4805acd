"""The small holes of issue #10 (finding 13), over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cloud_harness import Cloud, Server, fresh_database


def test_a_product_the_caller_has_no_standing_in_is_not_found(cloud: Cloud) -> None:
    owner, token = cloud.user_token()
    product = cloud.product(owner)
    with cloud.http(token) as h:
        slug = h.get(f"/v1/products/{product}").json()["product"]["slug"]
    _, outsider = cloud.user_token()
    with cloud.http(outsider) as h:
        unknown = h.get("/v1/products/no-such-product-here")
        assert unknown.status_code == 404, unknown.text
        for ref in (slug, str(product)):
            for path in ("", "/devices", "/customers", "/team", "/clients", "/devices/" + "0" * 24):
                reply = h.get(f"/v1/products/{ref}{path}")
                assert reply.status_code == 404, (path, reply.text)
                # The same answer as for a product that does not exist, but for the name.
                assert reply.json() == {
                    k: v.replace("no-such-product-here", ref) if isinstance(v, str) else v
                    for k, v in unknown.json().items()
                }, path


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def open_server(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server listening on every address, and this machine's outward address."""
    outward = _outward_address()
    if outward is None:
        pytest.skip("no non-loopback address to reach the server from")
    tmp = tmp_path_factory.mktemp(f"open-{backend}")
    url, drop = fresh_database(backend, tmp)
    srv = Server(url, tmp, ["--host", "0.0.0.0", "--device-port", "0"])
    try:
        srv.start()
        yield srv, outward
    finally:
        srv.stop()
        drop()


def test_metrics_beyond_loopback_need_an_opt_in(open_server: tuple[Server, str]) -> None:
    srv, outward = open_server
    assert httpx.get(f"{srv.base_url}/metrics").status_code == 200  # loopback: open
    reply = httpx.get(f"http://{outward}:{srv.port}/metrics")
    assert reply.status_code == 403, reply.text
    assert "FERMION_METRICS_TOKEN" in reply.json()["error"]


def test_metrics_token_is_needed_from_everyone(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, drop = fresh_database(backend, tmp_path)
    monkeypatch.setenv("FERMION_METRICS_TOKEN", "metrics-secret-1")
    srv = Server(url, tmp_path, ["--device-port", "0"])
    try:
        srv.start()
        assert httpx.get(f"{srv.base_url}/metrics").status_code == 401
        wrong = {"Authorization": "Bearer metrics-secret-2"}
        assert httpx.get(f"{srv.base_url}/metrics", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer metrics-secret-1"}
        assert httpx.get(f"{srv.base_url}/metrics", headers=right).status_code == 200
    finally:
        srv.stop()
        drop()


def test_metrics_public_opens_them(backend: str, tmp_path: Path) -> None:
    outward = _outward_address()
    if outward is None:
        pytest.skip("no non-loopback address to reach the server from")
    url, drop = fresh_database(backend, tmp_path)
    srv = Server(url, tmp_path, ["--host", "0.0.0.0", "--device-port", "0", "--metrics-public"])
    try:
        srv.start()
        assert httpx.get(f"http://{outward}:{srv.port}/metrics").status_code == 200
    finally:
        srv.stop()
        drop()


def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fermion.db'}"
    srv = Server(url, tmp_path, ["--device-port", "0"])
    try:
        srv.start()
        httpx.get(f"{srv.base_url}/v1/server-keys")
        files = sorted(tmp_path.glob("fermion.db*"))
        assert {f.name for f in files} >= {"fermion.db", "fermion.db-wal"}, files
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, (file, oct(file.stat().st_mode))
    finally:
        srv.stop()
    # A file an older version left world-readable is made private at the next start.
    (tmp_path / "fermion.db").chmod(0o644)
    try:
        srv.start()
        assert stat.S_IMODE((tmp_path / "fermion.db").stat().st_mode) == 0o600
    finally:
        srv.stop()
