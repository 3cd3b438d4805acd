"""Product customers over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fermion.cloud.store.models import AuditEvent, Customer, Device


def audit_actions(cloud: Any, product_id: int) -> list[str]:
    async def q(store: Any) -> list[str]:
        async with store.read() as s:
            return list(
                (
                    await s.scalars(
                        select(AuditEvent.action)
                        .where(AuditEvent.product_id == product_id)
                        .order_by(AuditEvent.id)
                    )
                ).all()
            )

    return cloud.run(q)


def customers(cloud: Any, product_id: int) -> list[str]:
    async def q(store: Any) -> list[str]:
        async with store.read() as s:
            rows = await s.scalars(select(Customer.email).where(Customer.product_id == product_id))
            return sorted(rows.all())

    return cloud.run(q)


@pytest.fixture(scope="module")
def product(cloud: Any) -> dict[str, Any]:
    owner, token = cloud.user_token()
    pid = cloud.product(owner)
    _, dev = cloud.member(pid, "developer")
    return {"pid": pid, "token": token, "dev": dev, "client": cloud.two_legged_client(pid)}


def email() -> str:
    return f"c-{secrets.token_hex(4)}@example.com"


def _is_token_reply(reply: httpx.Response) -> str:
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 7776000
    assert len(body["access_token"]) == 40 and body["refresh_token"]
    return body["access_token"]


def test_team_token_creates_customer_with_password(cloud: Any, product: dict[str, Any]) -> None:
    who = email()
    with cloud.http(product["dev"]) as h:
        token = _is_token_reply(
            h.post(
                f"/v1/products/{product['pid']}/customers",
                data={"email": who, "password": "pw-123456"},
            )
        )
    with cloud.http(token) as h:
        assert h.get("/v1/user").json()["username"] == who
    # The customer can now log in with the product client's credentials and its password.
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=product["client"],
        data={"grant_type": "password", "username": who, "password": "pw-123456"},
    )
    assert reply.status_code == 200, reply.text
    assert "customer.create" in audit_actions(cloud, product["pid"])


def test_client_basic_credentials_create_shadow_customer(
    cloud: Any, product: dict[str, Any]
) -> None:
    who = email()
    reply = httpx.post(
        f"{cloud.base_url}/v1/products/{product['pid']}/customers",
        auth=product["client"],
        data={"email": who, "no_password": "true"},
    )
    token = _is_token_reply(reply)
    with cloud.http(token) as h:
        assert h.get("/v1/user").json()["username"] == who
    # A shadow customer gets tokens only through the client: scope=customer=<email>.
    assert cloud.customer_token(product["client"], who)


def test_client_credentials_in_body_as_particle_api_js_sends(
    cloud: Any, product: dict[str, Any]
) -> None:
    client_id, secret = product["client"]
    who = email()
    reply = httpx.post(
        f"{cloud.base_url}/v1/products/{product['pid']}/customers",
        data={
            "email": who,
            "password": "pw-abcdef",
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    _is_token_reply(reply)
    assert who in customers(cloud, product["pid"])


def test_bad_client_secret_and_other_products_client_refused(
    cloud: Any, product: dict[str, Any]
) -> None:
    client_id, _ = product["client"]
    who = email()
    wrong = httpx.post(
        f"{cloud.base_url}/v1/products/{product['pid']}/customers",
        auth=(client_id, "not-the-secret"),
        data={"email": who, "no_password": "true"},
    )
    assert wrong.status_code == 401
    owner2, _ = cloud.user_token()
    other = cloud.product(owner2)
    foreign = httpx.post(
        f"{cloud.base_url}/v1/products/{other}/customers",
        auth=product["client"],
        data={"email": who, "no_password": "true"},
    )
    assert foreign.status_code == 404  # no standing in that product: as if unknown
    assert who not in customers(cloud, product["pid"]) + customers(cloud, other)


def test_missing_fields_and_duplicates(cloud: Any, product: dict[str, Any]) -> None:
    path = f"/v1/products/{product['pid']}/customers"
    who = email()
    with cloud.http(product["token"]) as h:
        no_email = h.post(path, data={"password": "x"})
        assert no_email.status_code == 400 and no_email.json()["error"].startswith("email:")
        no_pw = h.post(path, data={"email": who})
        assert no_pw.status_code == 400 and no_pw.json()["error"].startswith("password:")
        assert who not in customers(cloud, product["pid"])
        assert h.post(path, data={"email": who, "no_password": "true"}).status_code == 201
        again = h.post(path, data={"email": who.upper(), "no_password": "true"})
        assert again.status_code == 400 and "already exists" in again.json()["error"]
        unknown = h.post(
            "/v1/products/nope-404/customers", data={"email": email(), "password": "x"}
        )
        assert unknown.status_code == 404


def test_list_shows_customers_and_their_devices(cloud: Any, product: dict[str, Any]) -> None:
    owner, token = cloud.user_token()
    pid = cloud.product(owner)
    client = cloud.two_legged_client(pid)
    a, b = email(), email()
    x = secrets.token_hex(12)
    with cloud.http(token) as h:
        for who in (a, b):
            assert (
                h.post(
                    f"/v1/products/{pid}/customers", data={"email": who, "no_password": "1"}
                ).status_code
                == 201
            )
        assert h.post(f"/v1/products/{pid}/devices", data={"id": x}).status_code == 200
    with cloud.http(cloud.customer_token(client, b)) as h:
        assert h.post("/v1/devices", data={"id": x}).status_code == 200
    with cloud.http(token) as h:
        listed = h.get(f"/v1/products/{pid}/customers").json()
        paged = h.get(f"/v1/products/{pid}/customers", params={"perPage": 1, "page": 2}).json()
    by_name = {c["username"]: c for c in listed["customers"]}
    assert set(by_name) == {a, b}
    assert by_name[b]["devices"] == [x] and by_name[a]["devices"] == []
    assert [d["id"] for d in listed["devices"]] == [x]
    assert listed["meta"]["total_pages"] == 1
    assert [c["username"] for c in paged["customers"]] == [b]
    assert paged["meta"]["total_pages"] == 2


def test_change_password_then_delete_revokes_tokens_and_releases_devices(
    cloud: Any, product: dict[str, Any]
) -> None:
    pid = product["pid"]
    who = email()
    x = secrets.token_hex(12)
    with cloud.http(product["token"]) as h:
        token = _is_token_reply(
            h.post(f"/v1/products/{pid}/customers", data={"email": who, "password": "first-pw"})
        )
        assert h.post(f"/v1/products/{pid}/devices", data={"id": x}).status_code == 200
    with cloud.http(token) as h:
        assert h.post("/v1/devices", data={"id": x}).status_code == 200
    with cloud.http(product["dev"]) as h:
        missing = h.put(f"/v1/products/{pid}/customers/{who}", json={})
        assert missing.status_code == 400 and missing.json()["error"].startswith("password:")
        changed = h.put(f"/v1/products/{pid}/customers/{who}", json={"password": "second-pw"})
        assert changed.status_code == 200 and changed.json() == {"ok": True}
    login = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=product["client"],
        data={"grant_type": "password", "username": who, "password": "second-pw"},
    )
    assert login.status_code == 200
    with cloud.http(product["dev"]) as h:
        gone = h.delete(f"/v1/products/{pid}/customers/{who}")
        assert gone.status_code == 200 and gone.json() == {"ok": True}
        assert h.delete(f"/v1/products/{pid}/customers/{who}").status_code == 404
    for t in (token, login.json()["access_token"]):
        with cloud.http(t) as h:
            assert h.get("/v1/user").status_code == 401
    assert who not in customers(cloud, pid)

    async def owner_of(store: Any) -> Any:
        async with store.read() as s:
            return (await s.get(Device, x)).owner_customer_id

    assert cloud.run(owner_of) is None
    actions = audit_actions(cloud, pid)
    assert actions[-3:] == ["token.revoke", "device.unclaim", "customer.delete"]
    assert "customer.update" in actions
