"""Every caller x every product action over real HTTP: who is let through, who gets a 403
(a caller with no standing in the product, a 404 as for an unknown product).

The expectations are written out from Particle's product permission matrix (team-access-controls)
rather than read from our permission table, so the table itself is under test too. A refused
call must change nothing: the product's audit trail does not grow.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fermion.cloud.store import Store
from fermion.cloud.store.models import AuditEvent

ROLES = ("owner", "administrator", "developer", "support", "view_only")
EVERYONE_ON_TEAM = set(ROLES)
BUILDERS = {"owner", "administrator", "developer"}
ADMINS = {"owner", "administrator"}
CLIENT = "product_client"
CUSTOMER = "customer"  # owns the device the device actions target
PRINCIPALS = (
    *ROLES,
    CLIENT,
    CUSTOMER,
    "other_customer",  # a customer of the same product who does not own the device
    "outsider",  # a user on no team
    "foreign_client",  # a product token of another product
    "foreign_customer",  # a customer of another product
)


@dataclass
class World:
    cloud: Any
    pid: int
    tokens: dict[str, str]
    client: tuple[str, str]
    customer_email: str
    store: Store
    loop: asyncio.AbstractEventLoop

    def owner(self) -> httpx.Client:
        return self.cloud.http(self.tokens["owner"])

    def audit_count(self) -> int:
        """Events in the whole trail (any product): a refused call must add none."""

        async def q() -> int:
            async with self.store.read() as s:
                return await s.scalar(select(func.max(AuditEvent.id))) or 0

        return self.loop.run_until_complete(q())

    def device(self, claimed: bool = True) -> str:
        """A fresh device in the product, claimed by ``customer`` when asked."""
        x = secrets.token_hex(12)
        with self.owner() as h:
            assert h.post(f"/v1/products/{self.pid}/devices", data={"id": x}).status_code == 200
        if claimed:
            with self.cloud.http(self.tokens[CUSTOMER]) as h:
                assert h.post("/v1/devices", data={"id": x}).status_code == 200
        return x

    def a_customer(self) -> str:
        email = f"t-{secrets.token_hex(4)}@example.com"
        with self.owner() as h:
            reply = h.post(
                f"/v1/products/{self.pid}/customers", data={"email": email, "no_password": "1"}
            )
            assert reply.status_code == 201
        return email

    def a_client(self) -> str:
        with self.owner() as h:
            reply = h.post(f"/v1/products/{self.pid}/clients", json={"name": "t", "type": "server"})
            assert reply.status_code == 200
            return reply.json()["client"]["id"]

    def a_member(self) -> str:
        email = self.cloud.user()
        with self.owner() as h:
            reply = h.post(
                f"/v1/products/{self.pid}/team", json={"username": email, "role": "Support"}
            )
            assert reply.status_code == 200
        return email


@pytest.fixture(scope="module")
def world(cloud: Any) -> Iterator[World]:
    owner, owner_token = cloud.user_token()
    pid = cloud.product(owner)
    tokens = {"owner": owner_token}
    for role in ROLES[1:]:
        tokens[role] = cloud.member(pid, role)[1]
    client = cloud.two_legged_client(pid)
    tokens[CLIENT] = cloud.product_token(client)
    customer_email = cloud.customer(pid)
    tokens[CUSTOMER] = cloud.customer_token(client, customer_email)
    tokens["other_customer"] = cloud.customer_token(client, cloud.customer(pid))
    tokens["outsider"] = cloud.user_token()[1]
    other_owner = cloud.user()
    other_pid = cloud.product(other_owner)
    other_client = cloud.two_legged_client(other_pid)
    tokens["foreign_client"] = cloud.product_token(other_client)
    tokens["foreign_customer"] = cloud.customer_token(other_client, cloud.customer(other_pid))
    loop = asyncio.new_event_loop()
    store = Store(cloud.server.database_url)
    try:
        yield World(cloud, pid, tokens, client, customer_email, store, loop)
    finally:
        loop.run_until_complete(store.close())
        loop.close()


Call = Callable[[World, httpx.Client], httpx.Response]


def p(w: World) -> str:
    return f"/v1/products/{w.pid}"


ACTIONS: dict[str, tuple[set[str], Call]] = {
    "product.get": (EVERYONE_ON_TEAM | {CLIENT}, lambda w, h: h.get(p(w))),
    "devices.list": (
        EVERYONE_ON_TEAM | {CLIENT, CUSTOMER, "other_customer"},
        lambda w, h: h.get(f"{p(w)}/devices"),
    ),
    "device.get": (
        EVERYONE_ON_TEAM | {CLIENT, CUSTOMER},
        lambda w, h: h.get(f"{p(w)}/devices/{w.device()}"),
    ),
    "devices.import": (
        BUILDERS | {CLIENT},
        lambda w, h: h.post(f"{p(w)}/devices", data={"id": secrets.token_hex(12)}),
    ),
    "device.update": (
        BUILDERS | {CLIENT, CUSTOMER},
        lambda w, h: h.put(f"{p(w)}/devices/{w.device()}", json={"name": "renamed"}),
    ),
    "device.remove": (
        BUILDERS | {CLIENT},
        lambda w, h: h.delete(f"{p(w)}/devices/{w.device()}"),
    ),
    "device.unclaim": (
        BUILDERS | {CLIENT, CUSTOMER},
        lambda w, h: h.delete(f"{p(w)}/devices/{w.device()}/owner"),
    ),
    "customers.list": (EVERYONE_ON_TEAM | {CLIENT}, lambda w, h: h.get(f"{p(w)}/customers")),
    "customers.create": (
        BUILDERS | {CLIENT},
        lambda w, h: h.post(
            f"{p(w)}/customers",
            data={"email": f"n-{secrets.token_hex(4)}@example.com", "no_password": "1"},
        ),
    ),
    "customers.update": (
        BUILDERS | {CLIENT},
        lambda w, h: h.put(f"{p(w)}/customers/{w.a_customer()}", json={"password": "pw-999"}),
    ),
    "customers.delete": (
        BUILDERS | {CLIENT},
        lambda w, h: h.delete(f"{p(w)}/customers/{w.a_customer()}"),
    ),
    "clients.list": (EVERYONE_ON_TEAM, lambda w, h: h.get(f"{p(w)}/clients")),
    "clients.create": (
        BUILDERS,
        lambda w, h: h.post(f"{p(w)}/clients", json={"name": "n", "type": "installed"}),
    ),
    "clients.update": (
        BUILDERS,
        lambda w, h: h.put(f"{p(w)}/clients/{w.a_client()}", json={"name": "renamed"}),
    ),
    "clients.delete": (BUILDERS, lambda w, h: h.delete(f"{p(w)}/clients/{w.a_client()}")),
    "team.list": (EVERYONE_ON_TEAM | {CLIENT}, lambda w, h: h.get(f"{p(w)}/team")),
    "team.invite": (
        ADMINS,
        lambda w, h: h.post(f"{p(w)}/team", json={"username": w.cloud.user(), "role": "Support"}),
    ),
    # Making someone Administrator: the escalation a Developer must not manage.
    "team.role": (
        ADMINS,
        lambda w, h: h.post(f"{p(w)}/team/{w.a_member()}", json={"role": "Administrator"}),
    ),
    "team.remove": (ADMINS, lambda w, h: h.delete(f"{p(w)}/team/{w.a_member()}")),
}


# Callers with no standing at all in the product: they get the 404 of an unknown product.
NO_STANDING = {"outsider", "foreign_client", "foreign_customer"}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_caller(world: World, action: str) -> None:
    allowed, call = ACTIONS[action]
    wrong: list[str] = []
    for who in PRINCIPALS:
        with world.cloud.http(world.tokens[who]) as h:
            # Setup requests (the owner's, made while building the call's arguments) are
            # audited too, so the trail is compared around the caller's own request only.
            reply = call(world, _Snapshotting(h, world))  # type: ignore[arg-type]
        if who in allowed:
            if not 200 <= reply.status_code < 300:
                wrong.append(f"{who}: expected success, got {reply.status_code} {reply.text}")
        elif who in NO_STANDING:
            # No standing in the product: answered as an unknown product would be, so that
            # a refusal does not tell which products exist.
            if reply.status_code != 404 or "not found" not in reply.json().get("error", ""):
                wrong.append(f"{who}: expected 404, got {reply.status_code} {reply.text}")
        elif reply.status_code != 403:
            wrong.append(f"{who}: expected 403, got {reply.status_code} {reply.text}")
        elif reply.json().get("ok") is not False or not reply.json().get("error"):
            wrong.append(f"{who}: 403 not in Particle's shape: {reply.text}")
        if who not in allowed and reply.headers.get("x-test-audit-grew"):
            wrong.append(f"{who}: refused, yet the audit trail grew")
    assert not wrong, "\n".join(wrong)


class _Snapshotting:
    """Wraps the caller's client to snapshot the audit count just before the real request."""

    def __init__(self, h: httpx.Client, world: World) -> None:
        self._h = h
        self._w = world

    def __getattr__(self, method: str) -> Callable[..., httpx.Response]:
        real = getattr(self._h, method)

        def go(*args: Any, **kwargs: Any) -> httpx.Response:
            before = self._w.audit_count()
            reply = real(*args, **kwargs)
            if reply.status_code in (403, 404) and self._w.audit_count() != before:
                reply.headers["x-test-audit-grew"] = "1"
            return reply

        return go
