"""Products and product devices over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select

from fermion.cloud.store.models import AuditEvent, Device


def dev_id() -> str:
    return secrets.token_hex(12)


def audit(cloud: Any, **where: Any) -> list[AuditEvent]:
    async def q(store: Any) -> list[AuditEvent]:
        async with store.read() as s:
            stmt = select(AuditEvent).order_by(AuditEvent.id)
            for k, v in where.items():
                stmt = stmt.where(getattr(AuditEvent, k) == v)
            return list((await s.scalars(stmt)).all())

    return cloud.run(q)


def device(cloud: Any, device_id: str) -> Device | None:
    async def q(store: Any) -> Device | None:
        async with store.read() as s:
            return await s.get(Device, device_id)

    return cloud.run(q)


@pytest.fixture(scope="module")
def team(cloud: Any) -> dict[str, Any]:
    owner, owner_token = cloud.user_token()
    pid = cloud.product(owner)
    _, dev_token = cloud.member(pid, "developer")
    client = cloud.two_legged_client(pid)
    slug = cloud.http(owner_token).get(f"/v1/products/{pid}").json()["product"]["slug"]
    return {
        "owner": owner,
        "token": owner_token,
        "pid": pid,
        "slug": slug,
        "dev": dev_token,
        "client": client,
    }


def test_product_listed_and_found_by_id_and_slug(cloud: Any, team: dict[str, Any]) -> None:
    with cloud.http(team["token"]) as h:
        for path in ("/v1/user/products", "/v1/products"):
            products = h.get(path).json()["products"]
            assert [p["id"] for p in products] == [team["pid"]]
        by_id = h.get(f"/v1/products/{team['pid']}")
        by_slug = h.get(f"/v1/products/{team['slug']}")
    assert by_id.status_code == by_slug.status_code == 200
    assert by_id.json() == by_slug.json()
    product = by_id.json()["product"]
    assert product["user"] == team["owner"]
    assert product["platform_id"] == 6


def test_product_token_sees_only_its_product(cloud: Any, team: dict[str, Any]) -> None:
    token = cloud.product_token(team["client"])
    with cloud.http(token) as h:
        assert [p["id"] for p in h.get("/v1/user/products").json()["products"]] == [team["pid"]]


def test_unknown_product_is_404_in_particle_shape(cloud: Any, team: dict[str, Any]) -> None:
    with cloud.http(team["token"]) as h:
        for path in ("/v1/products/999999", "/v1/products/no-such-slug/devices"):
            reply = h.get(path)
            assert reply.status_code == 404
            assert reply.json()["ok"] is False
            assert "not found" in reply.json()["error"]


def test_import_by_id_ids_and_file(cloud: Any, team: dict[str, Any]) -> None:
    a, b, c, d = dev_id(), dev_id(), dev_id(), dev_id()
    path = f"/v1/products/{team['pid']}/devices"
    with cloud.http(team["dev"]) as h:
        one = h.post(path, data={"id": a})
        assert one.status_code == 200, one.text
        assert one.json() == {
            "updated": 1,
            "updatedDeviceIds": [a],
            "existingDeviceIds": [],
            "nonmemberDeviceIds": [],
            "invalidDeviceIds": [],
            "protectedDeviceIds": [],
        }
        many = h.post(path, json={"ids": [b, a, "nothex"]}).json()
        assert many["updatedDeviceIds"] == [b]
        assert many["existingDeviceIds"] == [a]
        assert many["invalidDeviceIds"] == ["nothex"]
        text = f"{c}\n\n{d.upper()}\r\n{a}\n"
        filed = h.post(path, files={"file": ("ids.txt", text.encode(), "text/plain")}).json()
        assert filed["updatedDeviceIds"] == [c, d]
        assert filed["existingDeviceIds"] == [a]
    for x in (a, b, c, d):
        assert device(cloud, x).product_id == team["pid"]
    imported = {e.device_id for e in audit(cloud, action="device.import")}
    assert {a, b, c, d} <= imported


def test_import_reports_devices_of_another_product(cloud: Any, team: dict[str, Any]) -> None:
    other_owner, other_token = cloud.user_token()
    other = cloud.product(other_owner)
    taken = dev_id()
    with cloud.http(other_token) as h:
        assert h.post(f"/v1/products/{other}/devices", data={"id": taken}).status_code == 200
    with cloud.http(team["token"]) as h:
        reply = h.post(f"/v1/products/{team['pid']}/devices", data={"id": taken}).json()
    assert reply["updated"] == 0 and reply["nonmemberDeviceIds"] == [taken]
    assert device(cloud, taken).product_id == other


def test_import_missing_field_names_it_and_stores_nothing(cloud: Any, team: dict[str, Any]) -> None:
    before = len(audit(cloud))
    with cloud.http(team["token"]) as h:
        reply = h.post(f"/v1/products/{team['pid']}/devices", json={})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("id:")
    assert len(audit(cloud)) == before


def test_ten_megabyte_body_is_refused_and_nothing_stored(cloud: Any, team: dict[str, Any]) -> None:
    big = (dev_id() + "\n") * (10 * 1024 * 1024 // 25)
    before = len(audit(cloud))
    with cloud.http(team["token"]) as h:
        reply = h.post(
            f"/v1/products/{team['pid']}/devices", files={"file": ("ids.txt", big.encode())}
        )
    assert reply.status_code == 413
    assert reply.json()["ok"] is False and "body" in reply.json()["error"]
    assert len(audit(cloud)) == before


def _import(cloud: Any, team: dict[str, Any], *ids: str) -> None:
    with cloud.http(team["token"]) as h:
        reply = h.post(f"/v1/products/{team['pid']}/devices", json={"ids": list(ids)})
        assert reply.status_code == 200, reply.text


def test_list_pages_filters_and_sorts(cloud: Any, team: dict[str, Any]) -> None:
    owner, token = cloud.user_token()
    pid = cloud.product(owner)
    ids = sorted(dev_id() for _ in range(5))
    local = {**team, "pid": pid, "token": token}
    _import(cloud, local, *ids)
    path = f"/v1/products/{pid}/devices"
    with cloud.http(token) as h:
        for i, x in enumerate(ids):
            assert h.put(f"{path}/{x}", json={"name": f"unit-{i}"}).status_code == 200
        first = h.get(path, params={"perPage": 2, "sortAttr": "deviceId"}).json()
        assert [d["id"] for d in first["devices"]] == ids[:2]
        assert first["meta"]["total_pages"] == 3
        third = h.get(path, params={"per_page": 2, "page": 3, "sortAttr": "deviceId"}).json()
        assert [d["id"] for d in third["devices"]] == ids[4:]
        desc = h.get(path, params={"sortAttr": "deviceName", "sortDir": "desc"}).json()
        assert [d["name"] for d in desc["devices"]] == [f"unit-{i}" for i in range(4, -1, -1)]
        named = h.get(path, params={"deviceName": "UNIT-3"}).json()["devices"]
        assert [d["id"] for d in named] == [ids[3]]
        by_id = h.get(path, params={"deviceId": ids[2][:20]}).json()["devices"]
        assert [d["id"] for d in by_id] == [ids[2]]
        bad = h.get(path, params={"sortAttr": "color"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("sortAttr:")
        bad_page = h.get(path, params={"page": 0})
        assert bad_page.status_code == 400 and "page" in bad_page.json()["error"]


def test_get_update_and_unknown_device(cloud: Any, team: dict[str, Any]) -> None:
    x = dev_id()
    _import(cloud, team, x)
    path = f"/v1/products/{team['pid']}/devices/{x}"
    with cloud.http(team["dev"]) as h:
        got = h.get(path).json()
        assert got["id"] == x and got["product_id"] == team["pid"]
        put = h.put(path, json={"name": "boiler", "notes": "basement"})
        assert put.status_code == 200
        assert put.json()["name"] == "boiler" and put.json()["notes"] == "basement"
        assert h.get(path).json()["name"] == "boiler"
        empty = h.put(path, json={})
        assert empty.status_code == 400 and empty.json()["error"].startswith("name:")
        long = h.put(path, json={"name": "x" * 201})
        assert long.status_code == 400 and long.json()["error"].startswith("name:")
        missing = h.get(f"/v1/products/{team['pid']}/devices/{dev_id()}")
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
    assert device(cloud, x).name == "boiler"
    assert [e.detail["name"] for e in audit(cloud, action="device.edit", device_id=x)] == [
        [None, "boiler"]
    ]


def _customer_owns(cloud: Any, team: dict[str, Any], x: str) -> str:
    email = cloud.customer(team["pid"])
    token = cloud.customer_token(team["client"], email)
    with cloud.http(token) as h:
        reply = h.post("/v1/devices", data={"id": x})
        assert reply.status_code == 200, reply.text
    return email


def test_unclaim_keeps_device_in_product(cloud: Any, team: dict[str, Any]) -> None:
    x = dev_id()
    _import(cloud, team, x)
    email = _customer_owns(cloud, team, x)
    assert device(cloud, x).owner_customer_id is not None
    with cloud.http(team["dev"]) as h:
        reply = h.delete(f"/v1/products/{team['pid']}/devices/{x}/owner")
    assert reply.status_code == 200 and reply.json() == {"ok": True}
    d = device(cloud, x)
    assert d.owner_customer_id is None and d.product_id == team["pid"]
    (event,) = audit(cloud, action="device.unclaim", device_id=x)
    assert event.detail["owner"] == f"customer:{email}"


def test_remove_takes_device_out_and_unclaims_customer(cloud: Any, team: dict[str, Any]) -> None:
    x = dev_id()
    _import(cloud, team, x)
    _customer_owns(cloud, team, x)
    with cloud.http(team["dev"]) as h:
        reply = h.delete(f"/v1/products/{team['pid']}/devices/{x}")
        assert reply.status_code == 204 and reply.content == b""
        assert h.get(f"/v1/products/{team['pid']}/devices/{x}").status_code == 404
    d = device(cloud, x)
    assert d.product_id is None and d.owner_customer_id is None
    actions = [e.action for e in audit(cloud, device_id=x)]
    assert actions[-2:] == ["device.unclaim", "device.remove"]


def test_customer_sees_only_own_devices(cloud: Any, team: dict[str, Any]) -> None:
    mine, theirs = dev_id(), dev_id()
    _import(cloud, team, mine, theirs)
    me = cloud.customer(team["pid"])
    my_token = cloud.customer_token(team["client"], me)
    _customer_owns(cloud, team, theirs)
    with cloud.http(my_token) as h:
        assert h.post("/v1/devices", data={"id": mine}).status_code == 200
        listed = h.get(f"/v1/products/{team['pid']}/devices").json()
        assert [d["id"] for d in listed["devices"]] == [mine]
        assert listed["customers"] == [{"id": listed["customers"][0]["id"], "username": me}]
        assert h.get(f"/v1/products/{team['pid']}/devices/{mine}").status_code == 200
        other = h.get(f"/v1/products/{team['pid']}/devices/{theirs}")
        assert other.status_code == 403
        assert h.delete(f"/v1/products/{team['pid']}/devices/{theirs}/owner").status_code == 403
        assert h.delete(f"/v1/products/{team['pid']}/devices/{mine}/owner").status_code == 200
    assert device(cloud, theirs).owner_customer_id is not None


def test_import_can_claim_to_a_team_member(cloud: Any, team: dict[str, Any]) -> None:
    x, y = dev_id(), dev_id()
    path = f"/v1/products/{team['pid']}/devices"
    outsider = cloud.user()
    with cloud.http(team["token"]) as h:
        refused = h.post(path, json={"id": x, "claim_user": outsider})
        assert refused.status_code == 400 and refused.json()["error"].startswith("claim_user:")
        assert device(cloud, x) is None
        done = h.post(path, json={"id": y, "claim_user": team["owner"]})
        assert done.status_code == 200 and done.json()["updatedDeviceIds"] == [y]
        assert h.get(f"{path}/{y}").json()["owner"] == team["owner"]
    assert [e.action for e in audit(cloud, device_id=y)] == ["device.import", "device.claim"]
