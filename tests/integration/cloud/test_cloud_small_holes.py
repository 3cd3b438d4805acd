"""The small holes of issue #10 (finding 13), over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cloud_harness import Cloud, Server, fresh_database
from sqlalchemy import text

from fermion.cloud import secretbox
from fermion.cloud.store import Store
from fermion.cloud.store.models.cloud import SEALED_PREFIX


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
        unknown = h.get("/v1/audit", params={"product_id": "no-such-product-here"})
        assert unknown.status_code == 404, unknown.text
        for ref in (slug, str(product)):
            reply = h.get("/v1/audit", params={"product_id": ref})
            assert reply.status_code == 404, reply.text
            assert reply.json()["error"] == unknown.json()["error"].replace(
                "no-such-product-here", ref
            )


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


def _stored_keys(url: str) -> list[tuple[int, str]]:
    """The server_keys rows as stored, not through the sealing column type."""

    async def read() -> list[tuple[int, str]]:
        store = Store(url)
        try:
            async with store.read() as session:
                rows = await session.execute(text("SELECT id, private_pem FROM server_keys"))
                return [(r[0], r[1]) for r in rows]
        finally:
            await store.close()

    return asyncio.run(read())


def _store_raw(url: str, key_id: int, value: str) -> None:
    async def write() -> None:
        store = Store(url)
        try:
            async with store.write() as session:
                await session.execute(
                    text("UPDATE server_keys SET private_pem = :v WHERE id = :i"),
                    {"v": value, "i": key_id},
                )
        finally:
            await store.close()

    asyncio.run(write())


def test_server_private_keys_are_sealed_at_rest(backend: str, tmp_path: Path) -> None:
    url, drop = fresh_database(backend, tmp_path)
    srv = Server(url, tmp_path, ["--device-port", "0"])
    key_file = tmp_path / "secret.key"
    try:
        srv.start()
        public = httpx.get(f"{srv.base_url}/v1/server-keys").json()
        srv.stop()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        [(key_id, stored)] = _stored_keys(url)
        assert stored.startswith(SEALED_PREFIX) and "PRIVATE KEY" not in stored
        blob = base64.b64decode(stored[len(SEALED_PREFIX) :])
        pem = secretbox.load(key_file, create=False).open(blob, b"server_keys.private_pem")
        assert pem.startswith(b"-----BEGIN")

        # A row left as plain PEM by an older version is sealed at the next start.
        _store_raw(url, key_id, pem.decode())
        srv.start()
        assert httpx.get(f"{srv.base_url}/v1/server-keys").json() == public
        srv.stop()
        [(_, resealed)] = _stored_keys(url)
        assert resealed.startswith(SEALED_PREFIX) and resealed != stored

        # Another key file: the start fails, naming the file, and nothing is served.
        good = key_file.read_text()
        key_file.unlink()
        with pytest.raises(AssertionError, match="did not start") as failed:
            srv.start()
        assert f"{key_file}: holds no key" in str(failed.value)
        assert "Traceback" not in str(failed.value)
        key_file.write_text(good)
        srv.start()
        assert httpx.get(f"{srv.base_url}/v1/server-keys").json() == public
    finally:
        srv.stop()
        drop()
