"""Every caller x every device and key action over HTTP, against the permission table.

The table itself is checked against an independent matrix in the unit tests; this proves the
routes enforce it, with no escalation: a refused action changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from cloud_harness import Cloud, device_pub_pem, new_device_id

from fermion.cloud.domain.permissions import Action, Principal, Role, allowed

CALLERS = [
    "owner",
    "administrator",
    "developer",
    "support",
    "view_only",
    "product_client",
    "customer",
    "outsider",
]
ACTOR = {
    "owner": Role.OWNER,
    "administrator": Role.ADMINISTRATOR,
    "developer": Role.DEVELOPER,
    "support": Role.SUPPORT,
    "view_only": Role.VIEW_ONLY,
    "product_client": Principal.PRODUCT_CLIENT,
    "customer": Principal.CUSTOMER,
    "outsider": None,
}


@dataclass
class World:
    cloud: Cloud
    product: int
    owner: str
    tokens: dict[str, str]
    customer: str  # the customer's token


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> World:
    owner_email = cloud.user()
    product = cloud.product(owner_email)
    tokens = {"owner": cloud.token_for(owner_email)}
    for role in ("administrator", "developer", "support", "view_only"):
        tokens[role] = cloud.member(product, role)[1]
    client = cloud.two_legged_client(product)
    tokens["product_client"] = cloud.product_token(client)
    tokens["customer"] = cloud.customer_token(client, cloud.customer(product))
    tokens["outsider"] = cloud.user_token()[1]
    return World(cloud, product, tokens["owner"], tokens, tokens["customer"])


def _device(world: World, claimed_by_customer: bool) -> str:
    device = new_device_id()
    assert world.cloud.provision(world.owner, device, product_id=world.product).status_code == 200
    if claimed_by_customer:
        with world.cloud.http(world.customer) as h:
            assert h.post("/v1/devices", data={"id": device}).status_code == 200
    return device


Act = Callable[[World, httpx.Client, str], httpx.Response]


def _approve(world: World, h: httpx.Client, device: str) -> httpx.Response:
    cid = world.cloud.add_candidate(device, device_pub_pem())
    return h.post(f"/v1/devices/{device}/keys/candidates/{cid}/approve")


def _upload(world: World, h: httpx.Client, device: str) -> httpx.Response:
    return h.post(
        f"/v1/provisioning/{device}",
        data={"publicKey": device_pub_pem(), "product_id": str(world.product)},
    )


# action -> (permission, device claimed by the customer?, request)
ACTIONS: dict[str, tuple[Action, bool, Act]] = {
    "view": (Action.DEVICE_VIEW, True, lambda w, h, d: h.get(f"/v1/devices/{d}")),
    "rename": (
        Action.DEVICE_EDIT,
        True,
        lambda w, h, d: h.put(f"/v1/devices/{d}", data={"name": "x"}),
    ),
    "unclaim": (Action.DEVICE_UNCLAIM, True, lambda w, h, d: h.delete(f"/v1/devices/{d}")),
    "key_history": (Action.KEY_VIEW, True, lambda w, h, d: h.get(f"/v1/devices/{d}/keys")),
    "key_upload": (Action.KEY_UPLOAD, False, _upload),
    "key_approve": (Action.KEY_APPROVE, True, _approve),
    "key_repair": (
        Action.KEY_REPAIR,
        True,
        lambda w, h, d: h.post(
            f"/v1/devices/{d}/keys/repair", data={"publicKey": device_pub_pem()}
        ),
    ),
    "audit": (Action.AUDIT_VIEW, True, lambda w, h, d: h.get("/v1/audit", params={"device_id": d})),
}


def _state(world: World, device: str) -> tuple[object, ...]:
    with world.cloud.http(world.owner) as h:
        info = h.get(f"/v1/devices/{device}").json()
    return info["owner"], info["name"], info["key_fingerprint"]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_caller_every_action(world: World, caller: str, action: str) -> None:
    permission, claimed, act = ACTIONS[action]
    device = _device(world, claimed)
    before = _state(world, device)
    actor = ACTOR[caller]
    # A customer stands only toward its own devices.
    standing = actor if (actor is not Principal.CUSTOMER or claimed) else None
    expected = standing is not None and allowed(standing, permission)
    with world.cloud.http(world.tokens[caller]) as h:
        reply = act(world, h, device)
    if expected:
        assert reply.status_code == 200, f"{caller} {action}: {reply.text}"
    else:
        assert reply.status_code in (403, 404), f"{caller} {action}: {reply.text}"
        assert reply.json()["ok"] is False
        assert _state(world, device) == before, "a refused action changed the device"
        if reply.status_code == 403 and isinstance(actor, Role):
            assert "role or above" in reply.json()["error"]
