"""GET /v1/audit: filters and who may see what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud_harness import Cloud, new_device_id


def test_filters(cloud: Cloud) -> None:
    owner = cloud.user()
    token = cloud.token_for(owner)
    product = cloud.product(owner)
    a, b = new_device_id(), new_device_id()
    cloud.provision(token, a, product_id=product)
    cloud.provision(token, b, product_id=product)
    with cloud.http(token) as h:
        by_product = h.get("/v1/audit", params={"product_id": product}).json()["events"]
        by_device = h.get("/v1/audit", params={"device_id": a}).json()["events"]
        by_action = h.get(
            "/v1/audit", params={"product_id": product, "action": "key.upload"}
        ).json()["events"]
        by_actor = h.get("/v1/audit", params={"actor": f"user:{owner}"}).json()["events"]
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        none_yet = h.get("/v1/audit", params={"since": future}).json()["events"]
        limited = h.get("/v1/audit", params={"product_id": product, "limit": 1}).json()["events"]
        page = h.get(
            "/v1/audit", params={"product_id": product, "before_id": limited[0]["id"]}
        ).json()["events"]
    assert {e["device_id"] for e in by_device} == {a}
    assert {e["device_id"] for e in by_action} == {a, b}
    assert {"product.create", "key.upload", "device.create"} <= {e["action"] for e in by_product}
    assert by_actor and all(e["actor"] == f"user:{owner}" for e in by_actor)
    assert none_yet == []
    assert len(limited) == 1 and all(e["id"] < limited[0]["id"] for e in page)
    upload = next(e for e in by_device if e["action"] == "key.upload")
    assert upload["request_id"] and upload["after_fingerprint"].startswith("SHA256:")


def test_outsiders_see_nothing_of_a_product(cloud: Cloud) -> None:
    owner = cloud.user()
    token = cloud.token_for(owner)
    product = cloud.product(owner)
    device = new_device_id()
    cloud.provision(token, device, product_id=product)
    _, outsider = cloud.user_token()
    with cloud.http(outsider) as h:
        refused = h.get("/v1/audit", params={"product_id": product})
        hidden = h.get("/v1/audit", params={"device_id": device})
        mine = h.get("/v1/audit").json()["events"]
    assert refused.status_code == 404  # as for a product that does not exist
    assert hidden.status_code == 404
    assert all(e["product_id"] != product for e in mine)


def test_every_team_role_may_read_the_product_log(cloud: Cloud) -> None:
    owner = cloud.user()
    product = cloud.product(owner)
    for role in ("administrator", "developer", "support", "view_only"):
        _, token = cloud.member(product, role)
        with cloud.http(token) as h:
            events = h.get("/v1/audit", params={"product_id": product}).json()["events"]
        assert any(e["action"] == "team.role" for e in events), role


def test_bad_filters_are_named(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    with cloud.http(token) as h:
        reply = h.get("/v1/audit", params={"limit": "lots"})
        since = h.get("/v1/audit", params={"since": "yesterday"})
    assert reply.status_code == 400 and reply.json()["error"].startswith("limit:")
    assert since.status_code == 400 and since.json()["error"].startswith("since:")
