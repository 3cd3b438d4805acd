"""particle-api-js 12, unchanged, against a real `fermion serve`.

Each case is one library call as a script would make it (see apijs_call.cjs): it checks what the
promise resolved or rejected with, then what the cloud holds.
"""

from __future__ import annotations

import pytest
from compat_harness import (
    ApiJs,
    FermionServer,
    ProductClient,
    Team,
    current_key,
    customer_token,
    new_device_id,
    provision,
    public_key_for,
)

# --- tokens --------------------------------------------------------------------------------


def test_login(api_js: ApiJs, server: FermionServer, team: Team) -> None:
    r = api_js("login", {"username": team.owner.email, "password": team.owner.password})

    assert r["ok"], r
    assert r["statusCode"] == 200
    body = r["body"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 7776000
    assert server.get("/v1/user", body["access_token"]).json()["username"] == team.owner.email


def test_login_with_a_wrong_password_rejects_with_particles_description(
    api_js: ApiJs, server: FermionServer, team: Team
) -> None:
    r = api_js("login", {"username": team.owner.email, "password": "wrong"})

    assert not r["ok"]
    assert r["statusCode"] == 400
    assert r["body"]["error"] == "invalid_grant"
    assert r["shortErrorDescription"] == "User credentials are invalid"
    assert r["message"] == (
        f"HTTP error 400 from {server.url}/oauth/token - User credentials are invalid"
    )


def test_login_as_client_owner_gives_a_product_token(
    api_js: ApiJs, server: FermionServer, team: Team, product_client: ProductClient
) -> None:
    r = api_js(
        "loginAsClientOwner",
        {},
        client_id=product_client.client_id,
        client_secret=product_client.secret,
    )

    assert r["ok"], r
    token = r["body"]["access_token"]
    devices = server.get(f"/v1/products/{team.product_id}/devices", token)
    assert devices.status_code == 200, devices.text


def test_delete_current_access_token(api_js: ApiJs, server: FermionServer, team: Team) -> None:
    token = server.password_token(team.owner.email, team.owner.password)

    r = api_js("deleteCurrentAccessToken", {"auth": token})

    assert r["ok"], r
    assert server.get("/v1/user", token).status_code == 401


# --- customers and their devices -----------------------------------------------------------


def test_create_customer_with_the_product_clients_credentials(
    api_js: ApiJs, server: FermionServer, team: Team, product_client: ProductClient
) -> None:
    token = customer_token(api_js, team, product_client, "ann@customer.example")

    assert server.get("/v1/devices", token).json() == []
    customers = server.get(f"/v1/products/{team.product_id}/customers", team.owner_token)
    assert customers.status_code == 200, customers.text
    assert "ann@customer.example" in {c["username"] for c in customers.json()["customers"]}


def test_customer_claims_lists_gets_and_is_removed_as_owner(
    api_js: ApiJs, server: FermionServer, team: Team, product_client: ProductClient
) -> None:
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    token = customer_token(api_js, team, product_client, "bob@customer.example")

    claimed = api_js("claimDevice", {"deviceId": device_id, "auth": token})
    assert claimed["ok"], claimed
    assert claimed["statusCode"] == 200

    mine = api_js("getDevice", {"deviceId": device_id, "auth": token})
    assert mine["ok"], mine
    assert mine["body"]["id"] == device_id
    assert mine["body"]["product_id"] == team.product_id

    listed = api_js("listDevices", {"product": team.product_id, "auth": team.owner_token})
    assert listed["ok"], listed
    (row,) = [d for d in listed["body"]["devices"] if d["id"] == device_id]
    assert "bob@customer.example" in {c["username"] for c in listed["body"]["customers"]}
    assert listed["body"]["meta"]["total_pages"] >= 1

    removed = api_js(
        "removeDeviceOwner",
        {"deviceId": device_id, "product": team.product_id, "auth": team.owner_token},
    )
    assert removed["ok"], removed
    assert device_id not in {d["id"] for d in server.get("/v1/devices", token).json()}
    still = server.get(f"/v1/products/{team.product_id}/devices/{device_id}", team.owner_token)
    assert still.status_code == 200, still.text
    assert not still.json().get("owner")
    assert row["id"] == device_id


def test_get_device_of_another_customer_is_refused(
    api_js: ApiJs, server: FermionServer, team: Team, product_client: ProductClient
) -> None:
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    owner = customer_token(api_js, team, product_client, "carol@customer.example")
    other = customer_token(api_js, team, product_client, "dan@customer.example")
    assert api_js("claimDevice", {"deviceId": device_id, "auth": owner})["ok"]

    r = api_js("getDevice", {"deviceId": device_id, "auth": other})

    assert not r["ok"]
    assert r["statusCode"] in (403, 404)
    assert r["body"]["ok"] is False


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["rsa", "ecc"])
def test_send_public_key(api_js: ApiJs, server: FermionServer, team: Team, alg: str) -> None:
    device_id = new_device_id()
    pem, sha256 = public_key_for(alg)

    r = api_js(
        "sendPublicKey",
        {"deviceId": device_id, "key": pem, "algorithm": alg, "auth": team.owner_token},
    )

    assert r["ok"], r
    assert r["statusCode"] == 200
    assert r["body"]["ok"] is True
    current = current_key(server, team.owner_token, device_id)
    assert current["fingerprint"] == sha256
    assert current["algorithm"] == alg


def test_send_public_key_of_the_wrong_algorithm_is_refused(
    api_js: ApiJs, server: FermionServer, team: Team
) -> None:
    device_id = new_device_id()
    rsa_pem, sha256 = public_key_for("rsa")
    assert api_js(
        "sendPublicKey", {"deviceId": device_id, "key": rsa_pem, "auth": team.owner_token}
    )["ok"]
    ec_pem, _ = public_key_for("ecc")

    r = api_js(
        "sendPublicKey",
        {"deviceId": device_id, "key": ec_pem, "algorithm": "rsa", "auth": team.owner_token},
    )

    assert not r["ok"]
    assert r["statusCode"] == 400
    assert r["body"]["ok"] is False
    assert current_key(server, team.owner_token, device_id)["fingerprint"] == sha256
