"""POST /v1/provisioning/:id, as particle-cli (form) and particle-api-js (JSON) send it."""

from __future__ import annotations

import pytest
from cloud_harness import Cloud, device_pub_pem, new_device_id

from fermion.keys import Algorithm, generate_server_key, private_key_pem, public_key_pem


def _history(cloud: Cloud, token: str, device: str) -> list[dict[str, object]]:
    with cloud.http(token) as h:
        return h.get(f"/v1/devices/{device}/keys").json()["keys"]


def test_json_upload_like_particle_api_js(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    with cloud.http(token) as h:
        reply = h.post(
            f"/v1/provisioning/{device}",
            json={
                "deviceID": device,
                "publicKey": device_pub_pem(),
                "filename": "particle-api",
                "order": "manual_1",
                "algorithm": "rsa",
            },
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["ok"] is True and reply.json()["key_version"] == 1


def test_ecc_device_is_udp(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    reply = cloud.provision(token, device, device_pub_pem(Algorithm.EC), algorithm="ecc")
    assert reply.status_code == 200, reply.text
    with cloud.http(token) as h:
        info = h.get(f"/v1/devices/{device}").json()
    assert info["transport"] == "udp" and info["key_algorithm"] == "ecc"


def test_new_key_is_a_new_version_and_the_old_one_stays(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    first, second = device_pub_pem(), device_pub_pem()
    cloud.provision(token, device, first)
    cloud.provision(token, device, second)
    same = cloud.provision(token, device, second).json()
    assert same["changed"] is False
    keys = _history(cloud, token, device)
    assert [k["version"] for k in keys] == [2, 1]
    assert [k["current"] for k in keys] == [True, False]
    assert keys[1]["public_key"] == first and keys[0]["public_key"] == second


@pytest.mark.parametrize("role", ["owner", "administrator", "developer"])
def test_team_roles_that_may_upload(cloud: Cloud, role: str) -> None:
    owner = cloud.user()
    product = cloud.product(owner)
    token = cloud.token_for(owner) if role == "owner" else cloud.member(product, role)[1]
    device = new_device_id()
    assert cloud.provision(token, device, product_id=product).status_code == 200
    assert cloud.provision(token, device, product_id=product).status_code == 200


@pytest.mark.parametrize(("role", "label"), [("support", "Support"), ("view_only", "View-only")])
def test_support_and_view_only_are_refused_naming_the_role(
    cloud: Cloud, role: str, label: str
) -> None:
    owner = cloud.user()
    owner_token = cloud.token_for(owner)
    product = cloud.product(owner)
    device = new_device_id()
    original = device_pub_pem()
    cloud.provision(owner_token, device, original, product_id=product)
    _, token = cloud.member(product, role)
    reply = cloud.provision(token, device, product_id=product)
    assert reply.status_code == 403
    message = reply.json()["error"]
    assert "needs the Developer role or above" in message and label in message
    assert [k["public_key"] for k in _history(cloud, owner_token, device)] == [original]
    new_device = cloud.provision(token, new_device_id(), product_id=product)
    assert new_device.status_code == 403


def test_someone_elses_device_is_never_overwritten(cloud: Cloud) -> None:
    _, owner = cloud.user_token()
    _, other = cloud.user_token()
    device = new_device_id()
    original = device_pub_pem()
    cloud.provision(owner, device, original)
    reply = cloud.provision(other, device)
    assert reply.status_code == 403
    assert "belongs to someone else" in reply.json()["error"]
    assert [k["public_key"] for k in _history(cloud, owner, device)] == [original]


def test_two_legged_customer_device_is_refused_with_the_procedure(cloud: Cloud) -> None:
    owner = cloud.user()
    owner_token = cloud.token_for(owner)
    product = cloud.product(owner)
    device = new_device_id()
    cloud.provision(owner_token, device, product_id=product)
    client = cloud.two_legged_client(product)
    customer = cloud.customer(product)
    with cloud.http(cloud.customer_token(client, customer)) as h:
        assert h.post("/v1/devices", data={"id": device}).status_code == 200
    reply = cloud.provision(owner_token, device, product_id=product)
    assert reply.status_code == 403
    message = reply.json()["error"]
    for words in (
        "unclaim",
        "customer token",
        "scope=customer=",
        "claim",
        customer,
        f"/v1/devices/{device}/keys/repair",
    ):
        assert words in message
    assert len(_history(cloud, owner_token, device)) == 1


def test_product_id_creates_the_device_in_the_product(cloud: Cloud) -> None:
    owner = cloud.user()
    product = cloud.product(owner, platform="argon")
    _, dev = cloud.member(product, "developer")
    device = new_device_id()
    reply = cloud.provision(
        dev, device, device_pub_pem(Algorithm.EC), product_id=product, algorithm="ecc"
    )
    assert reply.status_code == 200, reply.text
    with cloud.http(dev) as h:
        info = h.get(f"/v1/devices/{device}").json()
    assert info["product_id"] == product and info["platform_id"] == 12 and info["owner"] is None


def test_outsider_cannot_add_to_a_product(cloud: Cloud) -> None:
    product = cloud.product(cloud.user())
    _, outsider = cloud.user_token()
    reply = cloud.provision(outsider, new_device_id(), product_id=product)
    assert reply.status_code == 403
    assert "not on this product's team" in reply.json()["error"]


@pytest.mark.parametrize(
    ("data", "field", "status"),
    [
        (
            {"publicKey": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
            "publicKey",
            400,
        ),
        ({"publicKey": "hello"}, "publicKey", 400),
        ({}, "publicKey", 400),
        ({"publicKey": "EC", "algorithm": "rsa"}, "publicKey", 400),
        ({"publicKey": "BIG"}, "publicKey", 400),
        ({"publicKey": "PRIV"}, "publicKey", 400),
        ({"publicKey": "OK", "algorithm": "dsa"}, "algorithm", 400),
        ({"publicKey": "OK", "product_id": "999999"}, "product_id", 404),
        ({"publicKey": "OK", "deviceID": "0" * 24}, "deviceID", 400),
    ],
)
def test_bad_input_is_named_and_nothing_is_stored(
    cloud: Cloud, data: dict[str, str], field: str, status: int
) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    replacements = {
        "EC": device_pub_pem(Algorithm.EC),
        "BIG": public_key_pem(generate_server_key(Algorithm.RSA).public_key()).decode(),
        "PRIV": private_key_pem(generate_server_key(Algorithm.EC)).decode(),
        "OK": device_pub_pem(),
    }
    body = {k: replacements.get(v, v) for k, v in data.items()}
    with cloud.http(token) as h:
        reply = h.post(f"/v1/provisioning/{device}", data=body)
        assert reply.status_code == status, reply.text
        assert reply.json()["ok"] is False
        assert reply.json()["error"].startswith(f"{field}:")
        assert h.get(f"/v1/devices/{device}").status_code == 404


def test_key_of_the_wrong_algorithm_for_the_device(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    cloud.provision(token, device)  # RSA: a TCP device
    reply = cloud.provision(token, device, device_pub_pem(Algorithm.EC), algorithm="ecc")
    assert reply.status_code == 400
    assert "uses RSA keys" in reply.json()["error"]


def test_bad_device_id_in_path(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    reply = cloud.provision(token, "xyz")
    assert reply.status_code == 400 and reply.json()["error"].startswith("deviceID:")


def test_ten_megabyte_body_is_refused(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    with cloud.http(token) as h:
        reply = h.post(
            f"/v1/provisioning/{device}",
            content=b"a" * (10 * 1024 * 1024),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert reply.status_code == 413
    assert reply.json()["ok"] is False and reply.json()["error"].startswith("body:")


def test_customer_token_cannot_create_devices(cloud: Cloud) -> None:
    product = cloud.product(cloud.user())
    client = cloud.two_legged_client(product)
    token = cloud.customer_token(client, cloud.customer(product))
    reply = cloud.provision(token, new_device_id())
    assert reply.status_code == 403 and "customer token" in reply.json()["error"]
