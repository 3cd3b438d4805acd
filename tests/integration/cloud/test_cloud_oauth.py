"""POST /oauth/token over real HTTP: grants, expiry, errors in Particle's OAuth shape."""

from __future__ import annotations

import httpx
import pytest
from cloud_harness import PASSWORD, Cloud

from harness import FakeClock


@pytest.mark.parametrize("client_id", ["particle", "CLI2", "particle-cli", "particle-api", "user"])
def test_password_grant_with_any_client_id(cloud: Cloud, client_id: str) -> None:
    email = cloud.user(password=PASSWORD)
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        data={
            "grant_type": "password",
            "username": email,
            "password": PASSWORD,
            "client_id": client_id,
            "client_secret": "client_secret_here",
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 7776000
    assert len(body["access_token"]) == 40 and len(body["refresh_token"]) == 40
    with cloud.http(body["access_token"]) as h:
        current = h.get("/v1/access_tokens/current").json()
    assert current["client"] == client_id


def test_password_grant_with_basic_auth_client(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=("particle", "particle"),
        data={"grant_type": "password", "username": email, "password": PASSWORD},
    )
    assert reply.status_code == 200


def test_expires_in_zero_means_never(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    token = cloud.login(email, expires_in="0")
    with cloud.http(token) as h:
        assert h.get("/v1/access_tokens/current").json()["expires_at"] is None


async def test_expires_in_is_honoured(cloud: Cloud) -> None:
    # The app in process on this module's database, with a clock the test moves: the token's
    # second passes without the test waiting for it.
    email = cloud.user(password=PASSWORD)
    clock = FakeClock()
    async with cloud.in_process(clock=clock) as app:
        login = {
            "grant_type": "password",
            "username": email,
            "password": PASSWORD,
            "client_id": "particle",
            "client_secret": "particle",
            "expires_in": "1",
        }
        reply = await app.post("/oauth/token", data=login)
        assert reply.status_code == 200, reply.text
        bearer = {"Authorization": f"Bearer {reply.json()['access_token']}"}
        assert (await app.get("/v1/user", headers=bearer)).status_code == 200  # alive, cached
        clock.advance(2.1)
        reply = await app.get("/v1/user", headers=bearer)
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_token"


def test_wrong_password(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        data={"grant_type": "password", "username": email, "password": "nope"},
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "invalid_grant",
        "error_description": "User credentials are invalid",
    }


def test_unknown_user_looks_like_a_wrong_password(cloud: Cloud) -> None:
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        data={"grant_type": "password", "username": "ghost@example.com", "password": "whatever"},
    )
    assert reply.status_code == 400
    assert reply.json()["error_description"] == "User credentials are invalid"


def test_json_body_is_refused(cloud: Cloud) -> None:
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        json={"grant_type": "password", "username": "a", "password": "b"},
    )
    assert reply.status_code == 400
    body = reply.json()
    assert body["error"] == "invalid_request" and "form-encoded" in body["error_description"]


def test_wrong_grant_type_is_named(cloud: Cloud) -> None:
    reply = httpx.post(f"{cloud.base_url}/oauth/token", data={"grant_type": "magic"})
    assert reply.status_code == 400
    assert reply.json()["error"] == "unsupported_grant_type"
    assert "grant_type: 'magic'" in reply.json()["error_description"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"grant_type": "password", "password": "x"}, "username"),
        ({"grant_type": "password", "username": "x@y.z"}, "password"),
        ({}, "grant_type"),
        (
            {"grant_type": "password", "username": "a@b.c", "password": "x", "expires_in": "-1"},
            "expires_in",
        ),
        (
            {"grant_type": "password", "username": "a@b.c", "password": "x", "expires_in": "soon"},
            "expires_in",
        ),
        ({"grant_type": "refresh_token"}, "refresh_token"),
    ],
)
def test_bad_fields_are_named(cloud: Cloud, data: dict[str, str], field: str) -> None:
    reply = httpx.post(f"{cloud.base_url}/oauth/token", data=data)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error_description"].startswith(f"{field}:")


def test_client_credentials_product_token_by_basic_and_by_body(cloud: Cloud) -> None:
    owner = cloud.user(password=PASSWORD)
    product = cloud.product(owner)
    client_id, secret = cloud.two_legged_client(product)
    by_basic = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    )
    by_body = httpx.post(
        f"{cloud.base_url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    for reply in (by_basic, by_body):
        assert reply.status_code == 200, reply.text
        with cloud.http(reply.json()["access_token"]) as h:
            assert h.get("/v1/devices").status_code == 200


def test_client_credentials_customer_scope(cloud: Cloud) -> None:
    owner = cloud.user(password=PASSWORD)
    product = cloud.product(owner)
    client = cloud.two_legged_client(product)
    customer = cloud.customer(product)
    token = cloud.customer_token(client, customer)
    with cloud.http(token) as h:
        assert h.get("/v1/user").json()["username"] == customer


def test_customer_scope_for_unknown_customer(cloud: Cloud) -> None:
    product = cloud.product(cloud.user(password=PASSWORD))
    client = cloud.two_legged_client(product)
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=client,
        data={"grant_type": "client_credentials", "scope": "customer=nobody@example.com"},
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_scope"
    assert "nobody@example.com" in reply.json()["error_description"]


def test_bad_client_secret(cloud: Cloud) -> None:
    product = cloud.product(cloud.user(password=PASSWORD))
    client_id, _ = cloud.two_legged_client(product)
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=(client_id, "wrong"),
        data={"grant_type": "client_credentials"},
    )
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"


def test_refresh_token_is_single_use(cloud: Cloud) -> None:
    product = cloud.product(cloud.user(password=PASSWORD))
    client = cloud.two_legged_client(product)
    first = httpx.post(
        f"{cloud.base_url}/oauth/token", auth=client, data={"grant_type": "client_credentials"}
    ).json()
    refreshed = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=client,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.text
    with cloud.http(refreshed.json()["access_token"]) as h:
        assert h.get("/v1/access_tokens/current").status_code == 200
    again = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=client,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_refresh_needs_the_issuing_client(cloud: Cloud) -> None:
    product = cloud.product(cloud.user(password=PASSWORD))
    client = cloud.two_legged_client(product)
    other = cloud.two_legged_client(product)
    first = httpx.post(
        f"{cloud.base_url}/oauth/token", auth=client, data={"grant_type": "client_credentials"}
    ).json()
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=other,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert reply.status_code == 401


def test_token_mint_is_audited(cloud: Cloud) -> None:
    email, token = cloud.user_token()
    with cloud.http(token) as h:
        events = h.get("/v1/audit", params={"action": "token.create"}).json()["events"]
    assert any(e["actor"] == f"user:{email}" for e in events)
