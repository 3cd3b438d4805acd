"""GET /v1/devices/:id/repair_plan: the server's one decision, from facts it holds itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cloud_harness import Cloud, Server, device_pub_pem, free_port, new_device_id, running_server


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A device port of its own: with the default one (5683) taken by another server on this
    # machine, the device server would not run, and every plan would say it cannot wait.
    args = ["--device-port", str(free_port())]
    with running_server(backend, tmp_path_factory, "repair-plan", args) as srv:
        yield srv


def _plan(cloud: Cloud, token: str, device: str, **params: str) -> dict[str, Any]:
    with cloud.http(token) as h:
        reply = h.get(f"/v1/devices/{device}/repair_plan", params=params)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _kinds(plan: dict[str, Any]) -> list[str]:
    return [s["kind"] for s in plan["steps"]]


def _customer_device(cloud: Cloud) -> tuple[str, int, str, str]:
    """(owner token, product, device, customer email): a product device a two-legged customer
    claimed."""
    owner = cloud.user()
    owner_token = cloud.token_for(owner)
    product = cloud.product(owner)
    device = new_device_id()
    cloud.provision(owner_token, device, product_id=product)
    client = cloud.two_legged_client(product)
    customer = cloud.customer(product)
    with cloud.http(cloud.customer_token(client, customer)) as h:
        assert h.post("/v1/devices", data={"id": device}).status_code == 200
    return owner_token, product, device, customer


def test_own_development_device(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    cloud.provision(token, device)
    plan = _plan(cloud, token, device, key="file")
    assert plan["refusal"] is None
    assert plan["facts"]["owned_by_caller"] is True and plan["facts"]["owner_kind"] == "user"
    assert plan["facts"]["product_id"] is None and plan["facts"]["caller_role"] == "owner"
    # The repair ends when the device is seen online with the new key; this one is silent, so
    # the plan says what that needs.
    assert plan["facts"]["can_connect"] is True and plan["facts"]["transport"] == "tcp"
    assert _kinds(plan) == ["send", "verify", "wait_online"]
    assert "not trying to connect" in plan["notes"][0]
    assert plan["needs"] == ["key_pem", "device_online"]


@pytest.mark.parametrize(
    ("role", "refused"),
    [("developer", None), ("administrator", None), ("support", "Support"), ("view_only", "View")],
)
def test_the_callers_real_role_decides(cloud: Cloud, role: str, refused: str | None) -> None:
    owner = cloud.user()
    product = cloud.product(owner)
    device = new_device_id()
    cloud.provision(cloud.token_for(owner), device, product_id=product)
    _, token = cloud.member(product, role)
    plan = _plan(cloud, token, device, key="file")
    assert plan["facts"]["caller_role"] == role and plan["facts"]["product_id"] == product
    if refused is None:
        assert plan["refusal"] is None and _kinds(plan)[0] == "send"
        assert plan["steps"][0]["product_id"] == product
    else:
        assert "needs the Developer role or above" in plan["refusal"]
        assert refused in plan["refusal"] and plan["steps"] == []


def test_a_customer_device_gets_the_atomic_repair_and_the_compatible_path_needs_the_client(
    cloud: Cloud,
) -> None:
    owner_token, _, device, customer = _customer_device(cloud)
    plan = _plan(cloud, owner_token, device, key="file")
    assert plan["facts"]["owner_kind"] == "customer" and plan["facts"]["owner"] == customer
    assert _kinds(plan) == ["atomic_repair", "verify", "wait_online"]
    assert "two_legged_client" not in plan["needs"]
    compat = _plan(cloud, owner_token, device, key="file", particle_compatible="true")
    assert _kinds(compat) == [
        "unclaim",
        "send",
        "customer_token",
        "claim_as_customer",
        "verify",
        "wait_online",
    ]
    assert "two_legged_client" in compat["steps"][0]["needs"]
    assert compat["needs"][0] == "two_legged_client"


def test_a_proven_presented_key_is_approved(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    cloud.provision(token, device)
    presented = device_pub_pem()
    candidate = cloud.add_candidate(device, presented, proven=True)
    plan = _plan(cloud, token, device)
    assert plan["key"] == {
        "source": "candidate",
        "label": plan["key"]["label"],
        "possession_proven": True,
    }
    assert plan["candidate"]["id"] == candidate
    assert plan["candidate"]["public_key"] == presented
    assert _kinds(plan) == ["approve", "verify", "wait_online"]


def test_no_presented_key_is_refused_saying_what_to_give(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    cloud.provision(token, device)
    plan = _plan(cloud, token, device)
    assert "presented no new key" in plan["refusal"] and "--key" in plan["refusal"]


def test_no_standing_is_the_usual_404_and_a_bad_id_names_the_field(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    cloud.provision(token, device)
    _, stranger = cloud.user_token()
    with cloud.http(stranger) as h:
        assert h.get(f"/v1/devices/{device}/repair_plan").status_code == 404
        assert h.get(f"/v1/devices/{new_device_id()}/repair_plan").status_code == 404
        bad = h.get("/v1/devices/nope/repair_plan")
        assert bad.status_code == 400 and "device_id" in bad.text
        wrong = h.get(f"/v1/devices/{device}/repair_plan", params={"key": "bogus"})
        assert wrong.status_code in (400, 422) and "key" in wrong.text
    with cloud.http() as h:
        assert h.get(f"/v1/devices/{device}/repair_plan").status_code == 401


def test_the_provisioning_refusal_quotes_the_plan(cloud: Cloud) -> None:
    owner_token, product, device, _ = _customer_device(cloud)
    reply = cloud.provision(owner_token, device, product_id=product)
    assert reply.status_code == 403
    message = reply.json()["error"]
    plan = _plan(cloud, owner_token, device, key="file")
    assert f"/v1/devices/{device}/repair_plan" in message
    # One text source: the refusal says the planner's own words for the caller's plan.
    for step in plan["steps"]:
        assert step["text"].replace("the given key", "") in message.replace("the given key", "")


def test_the_product_variant_needs_the_device_in_that_product(cloud: Cloud) -> None:
    owner = cloud.user()
    token = cloud.token_for(owner)
    product, other = cloud.product(owner), cloud.product(owner)
    device = new_device_id()
    cloud.provision(token, device, product_id=product)
    with cloud.http(token) as h:
        reply = h.get(
            f"/v1/products/{product}/devices/{device}/repair_plan", params={"key": "file"}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["steps"] == _plan(cloud, token, device, key="file")["steps"]
        assert h.get(f"/v1/products/{other}/devices/{device}/repair_plan").status_code == 404
        assert h.get(f"/v1/products/nosuch/devices/{device}/repair_plan").status_code == 404
