"""Fixtures for the compatibility suite: one `fermion serve` for the run, bootstrapped the way an
operator would (`fermion admin create-user` / `create-product` / `set-role`), and the real Node
clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from compat_harness import (
    ApiJs,
    FermionServer,
    ParticleCli,
    ProductClient,
    Team,
    create_user,
    ensure_clients_installed,
    node_missing_reason,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = node_missing_reason()
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.integration)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def clients_installed() -> None:
    ensure_clients_installed()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    return tmp_path_factory.mktemp(f"compat-{request.module.__name__.rsplit('.', 1)[-1]}")


@pytest.fixture(scope="module")
def net_log(module_dir: Path) -> Path:
    return module_dir / "non-loopback-connections.log"


@pytest.fixture(autouse=True)
def no_phone_home(net_log: Path) -> Iterator[None]:
    """Every case also proves the clients made no connection beyond loopback."""
    yield
    attempts = net_log.read_text() if net_log.exists() else ""
    assert attempts == "", f"a client tried to leave loopback:\n{attempts}"


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, clients_installed: None
) -> Iterator[FermionServer]:
    """One cloud for the whole suite: every case makes its own devices, customers and logins."""
    srv = FermionServer(home=tmp_path_factory.mktemp("compat-fermion-home"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def team(server: FermionServer) -> Team:
    owner = create_user(server, "owner@compat.example")
    developer = create_user(server, "developer@compat.example")
    viewer = create_user(server, "viewer@compat.example")
    server.admin("create-product", "Compat Widgets", "--owner", owner.email, "--platform", "photon")
    owner_token = server.password_token(owner.email, owner.password)
    products = server.get("/v1/user/products", owner_token)
    assert products.status_code == 200, products.text
    (product,) = [p for p in products.json()["products"] if p["name"] == "Compat Widgets"]
    server.admin("set-role", str(product["id"]), developer.email, "--role", "developer")
    server.admin("set-role", str(product["id"]), viewer.email, "--role", "view_only")
    return Team(owner, developer, viewer, int(product["id"]), owner_token)


@pytest.fixture
def particle(
    server: FermionServer, tmp_path_factory: pytest.TempPathFactory, net_log: Path
) -> ParticleCli:
    """particle-cli in a fresh HOME whose default profile points at the test server."""
    return ParticleCli(tmp_path_factory.mktemp("particle-home"), server.url, net_log)


@pytest.fixture
def api_js(server: FermionServer, module_dir: Path, net_log: Path) -> ApiJs:
    return ApiJs(server.url, module_dir / "node-home", net_log)


@pytest.fixture(scope="session")
def product_client(server: FermionServer, team: Team) -> ProductClient:
    """A two-legged (server) product OAuth client, made with POST /v1/products/:p/clients."""
    with server.http(team.owner_token) as c:
        r = c.post(
            f"/v1/products/{team.product_id}/clients",
            data={"name": "compat backend", "type": "server"},
        )
    assert r.status_code in (200, 201), r.text
    client = r.json()["client"]
    return ProductClient(client["id"], client["secret"])
