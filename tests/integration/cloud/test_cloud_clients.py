"""Product OAuth clients over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fermion.cloud.store.models import AuditEvent, OAuthClient


@pytest.fixture(scope="module")
def product(cloud: Any) -> dict[str, Any]:
    owner, token = cloud.user_token()
    pid = cloud.product(owner)
    _, dev = cloud.member(pid, "developer")
    return {"pid": pid, "token": token, "dev": dev}


def stored(cloud: Any, client_id: str) -> OAuthClient | None:
    async def q(store: Any) -> OAuthClient | None:
        async with store.read() as s:
            return await s.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))

    return cloud.run(q)


def audit(cloud: Any, action: str) -> list[AuditEvent]:
    async def q(store: Any) -> list[AuditEvent]:
        async with store.read() as s:
            stmt = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            return list((await s.scalars(stmt)).all())

    return cloud.run(q)


@pytest.mark.parametrize(
    ("given", "kind", "scope"),
    [
        ("installed", "installed", None),
        ("server", "server", None),
        ("Two-Legged Auth (Server)", "server", None),
        ("two-legged", "server", None),
        ("Simple Auth (Mobile/Web App)", "installed", "customers:create"),
    ],
)
def test_create_types_secret_once_hashed(
    cloud: Any, product: dict[str, Any], given: str, kind: str, scope: str | None
) -> None:
    with cloud.http(product["dev"]) as h:
        reply = h.post(
            f"/v1/products/{product['pid']}/clients", json={"name": "My App", "type": given}
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        client = body["client"]
        assert body["ok"] is True and client["type"] == kind and client.get("scope") == scope
        assert client["id"].startswith("my-app-") and len(client["secret"]) == 40
        listed = h.get(f"/v1/products/{product['pid']}/clients").json()["clients"]
    mine = [c for c in listed if c["id"] == client["id"]]
    assert mine and "secret" not in mine[0]
    row = stored(cloud, client["id"])
    assert row is not None and client["secret"] not in row.secret_hash
    assert row.secret_hash.startswith("$argon2id$")
    assert any(e.detail["client_id"] == client["id"] for e in audit(cloud, "client.create"))
    # The secret works for a product token unless the client is limited to creating customers.
    token = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=(client["id"], client["secret"]),
        data={"grant_type": "client_credentials"},
    )
    assert token.status_code == (403 if scope else 200), token.text


def test_web_client_needs_redirect_uri(cloud: Any, product: dict[str, Any]) -> None:
    path = f"/v1/products/{product['pid']}/clients"
    with cloud.http(product["token"]) as h:
        no_uri = h.post(path, json={"name": "site", "type": "web"})
        assert no_uri.status_code == 400 and no_uri.json()["error"].startswith("redirect_uri:")
        ok = h.post(
            path, json={"name": "site", "type": "web", "redirect_uri": "https://a.example/cb"}
        )
        assert (
            ok.status_code == 200 and ok.json()["client"]["redirect_uri"] == "https://a.example/cb"
        )


def test_bad_input_names_the_field_and_stores_nothing(cloud: Any, product: dict[str, Any]) -> None:
    path = f"/v1/products/{product['pid']}/clients"
    before = len(audit(cloud, "client.create"))
    with cloud.http(product["token"]) as h:
        for body, field in (
            ({"type": "installed"}, "name:"),
            ({"name": "x"}, "type:"),
            ({"name": "x", "type": "toaster"}, "type:"),
            ({"name": "x", "type": "installed", "scope": "devices:list"}, "scope:"),
        ):
            reply = h.post(path, json=body)
            assert reply.status_code == 400, body
            assert reply.json()["error"].startswith(field)
        assert (
            h.post("/v1/products/999999/clients", json={"name": "x", "type": "server"}).status_code
            == 404
        )
    assert len(audit(cloud, "client.create")) == before


def test_update_and_delete_revokes_tokens(cloud: Any, product: dict[str, Any]) -> None:
    pid = product["pid"]
    with cloud.http(product["dev"]) as h:
        client = h.post(
            f"/v1/products/{pid}/clients", json={"name": "srv", "type": "server"}
        ).json()["client"]
        creds = (client["id"], client["secret"])
        product_token = httpx.post(
            f"{cloud.base_url}/oauth/token", auth=creds, data={"grant_type": "client_credentials"}
        ).json()["access_token"]
        put = h.put(
            f"/v1/products/{pid}/clients/{client['id']}",
            json={"name": "renamed", "scope": "customers:create"},
        )
        assert put.status_code == 200
        assert put.json()["client"] == {
            "id": client["id"],
            "name": "renamed",
            "type": "server",
            "scope": "customers:create",
        }
        cleared = h.put(f"/v1/products/{pid}/clients/{client['id']}", json={"scope": "none"})
        assert "scope" not in cleared.json()["client"]
        assert h.put(f"/v1/products/{pid}/clients/nope", json={"name": "x"}).status_code == 404
        gone = h.delete(f"/v1/products/{pid}/clients/{client['id']}")
        assert gone.status_code == 204
        assert h.delete(f"/v1/products/{pid}/clients/{client['id']}").status_code == 404
    with cloud.http(product_token) as h:
        assert h.get("/v1/user").status_code == 401
    again = httpx.post(
        f"{cloud.base_url}/oauth/token", auth=creds, data={"grant_type": "client_credentials"}
    )
    assert again.status_code == 401
    assert stored(cloud, client["id"]) is None
    assert any(e.detail["client_id"] == client["id"] for e in audit(cloud, "client.delete"))
