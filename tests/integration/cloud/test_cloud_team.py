"""A product's team over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from fermion.cloud.store.models import AuditEvent


@pytest.fixture(scope="module")
def product(cloud: Any) -> dict[str, Any]:
    owner, token = cloud.user_token()
    pid = cloud.product(owner)
    admin_email, admin = cloud.member(pid, "administrator")
    return {"pid": pid, "owner": owner, "token": token, "admin": admin, "admin_email": admin_email}


def roles(cloud: Any, token: str, pid: int) -> dict[str, str]:
    with cloud.http(token) as h:
        reply = h.get(f"/v1/products/{pid}/team")
    assert reply.status_code == 200, reply.text
    assert reply.json()["ok"] is True
    return {m["username"]: m["role"]["name"] for m in reply.json()["team"]}


def audit(cloud: Any, pid: int) -> list[AuditEvent]:
    async def q(store: Any) -> list[AuditEvent]:
        async with store.read() as s:
            stmt = select(AuditEvent).where(AuditEvent.product_id == pid).order_by(AuditEvent.id)
            return list((await s.scalars(stmt)).all())

    return cloud.run(q)


def test_list_shows_owner_and_roles(cloud: Any, product: dict[str, Any]) -> None:
    team = roles(cloud, product["token"], product["pid"])
    assert team == {product["owner"]: "Owner", product["admin_email"]: "Administrator"}


def test_invite_change_remove(cloud: Any, product: dict[str, Any]) -> None:
    pid = product["pid"]
    newcomer = cloud.user()
    with cloud.http(product["admin"]) as h:
        invited = h.post(
            f"/v1/products/{pid}/team", json={"username": newcomer, "role": "Developer"}
        )
        assert invited.status_code == 200, invited.text
        assert invited.json() == {
            "ok": True,
            "invited": {"username": newcomer, "role": "Developer"},
        }
        assert roles(cloud, product["token"], pid)[newcomer] == "Developer"
        twice = h.post(f"/v1/products/{pid}/team", json={"username": newcomer, "role": "Support"})
        assert twice.status_code == 400 and twice.json()["error"].startswith("username:")
        changed = h.post(f"/v1/products/{pid}/team/{newcomer}", data={"role": "View-only"})
        assert changed.status_code == 200, changed.text
        assert roles(cloud, product["token"], pid)[newcomer] == "View-only"
        removed = h.delete(f"/v1/products/{pid}/team/{newcomer}")
        assert removed.status_code == 200 and removed.json() == {"ok": True}
        assert newcomer not in roles(cloud, product["token"], pid)
        assert h.delete(f"/v1/products/{pid}/team/{newcomer}").status_code == 404
    events = [(e.action, e.detail) for e in audit(cloud, pid) if e.action.startswith("team.")]
    assert events[-3:] == [
        ("team.invite", {"user": newcomer, "role": "developer"}),
        ("team.role", {"user": newcomer, "before": "developer", "after": "view_only"}),
        ("team.remove", {"user": newcomer, "role": "view_only"}),
    ]


def test_invite_without_role_is_least_privilege(cloud: Any, product: dict[str, Any]) -> None:
    someone = cloud.user()
    with cloud.http(product["token"]) as h:
        assert (
            h.post(f"/v1/products/{product['pid']}/team", json={"username": someone}).status_code
            == 200
        )
    assert roles(cloud, product["token"], product["pid"])[someone] == "View-only"


def test_owner_cannot_be_changed_removed_or_granted(cloud: Any, product: dict[str, Any]) -> None:
    pid = product["pid"]
    owner = product["owner"]
    someone = cloud.user()
    for token in (product["admin"], product["token"]):
        with cloud.http(token) as h:
            demote = h.post(f"/v1/products/{pid}/team/{owner}", json={"role": "Developer"})
            assert demote.status_code == 403 and "owner" in demote.json()["error"]
            assert h.delete(f"/v1/products/{pid}/team/{owner}").status_code == 403
            grant = h.post(f"/v1/products/{pid}/team", json={"username": someone, "role": "Owner"})
            assert grant.status_code == 403
    assert roles(cloud, product["token"], pid)[owner] == "Owner"
    assert someone not in roles(cloud, product["token"], pid)


def test_bad_input(cloud: Any, product: dict[str, Any]) -> None:
    pid = product["pid"]
    with cloud.http(product["token"]) as h:
        no_user = h.post(f"/v1/products/{pid}/team", json={"role": "Developer"})
        assert no_user.status_code == 400 and no_user.json()["error"].startswith("username:")
        unknown = h.post(f"/v1/products/{pid}/team", json={"username": "ghost@example.com"})
        assert unknown.status_code == 404 and unknown.json()["error"].startswith("username:")
        bad_role = h.post(
            f"/v1/products/{pid}/team", json={"username": cloud.user(), "role": "King"}
        )
        assert bad_role.status_code == 400 and bad_role.json()["error"].startswith("role:")
        no_role = h.post(f"/v1/products/{pid}/team/{product['admin_email']}", json={})
        assert no_role.status_code == 400 and no_role.json()["error"].startswith("role:")
        assert h.get("/v1/products/424242/team").status_code == 404
