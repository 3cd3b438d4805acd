"""/v1/devices: list, read, claim, unclaim, rename."""

from __future__ import annotations

from cloud_harness import Cloud, new_device_id


def test_provisioned_device_belongs_to_the_uploader(cloud: Cloud) -> None:
    email, token = cloud.user_token()
    device = new_device_id()
    assert cloud.provision(token, device).status_code == 200
    with cloud.http(token) as h:
        listed = h.get("/v1/devices").json()
        one = h.get(f"/v1/devices/{device}").json()
    assert [d["id"] for d in listed] == [device]
    assert one["owner"] == email
    assert one["platform_id"] == 6 and one["product_id"] == 6
    assert one["key_fingerprint"].startswith("SHA256:")
    assert one["online"] is False and one["connected"] is False


def test_someone_elses_device_is_hidden(cloud: Cloud) -> None:
    _, owner = cloud.user_token()
    _, stranger = cloud.user_token()
    device = new_device_id()
    cloud.provision(owner, device)
    with cloud.http(stranger) as h:
        reply = h.get(f"/v1/devices/{device}")
        assert reply.status_code == 404
        assert reply.json()["ok"] is False
        assert h.get("/v1/devices").json() == []


def test_claim_unknown_device(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    with cloud.http(token) as h:
        reply = h.post("/v1/devices", data={"id": new_device_id()})
    assert reply.status_code == 404
    assert reply.json()["error"] == "device not found"


def test_claim_someone_elses_device(cloud: Cloud) -> None:
    _, owner = cloud.user_token()
    _, other = cloud.user_token()
    device = new_device_id()
    cloud.provision(owner, device)
    with cloud.http(other) as h:
        reply = h.post("/v1/devices", json={"id": device, "request_transfer": False})
    assert reply.status_code == 403
    assert "belongs to someone else" in reply.json()["error"]
    assert reply.json()["errors"] == ["That belongs to someone else."]


def test_unclaim_then_claim_by_another_user(cloud: Cloud) -> None:
    _, owner = cloud.user_token()
    new_email, new_owner = cloud.user_token()
    device = new_device_id()
    cloud.provision(owner, device)
    with cloud.http(owner) as h:
        assert h.delete(f"/v1/devices/{device}").json() == {"ok": True}
        assert h.get(f"/v1/devices/{device}").status_code == 404
    cloud.set_online(device)  # claiming by id needs the device connected
    with cloud.http(new_owner) as h:
        claimed = h.post("/v1/devices", data={"id": device.upper()})
        assert claimed.json() == {"ok": True, "deviceID": device, "claimed": True}
        assert h.get(f"/v1/devices/{device}").json()["owner"] == new_email
    with cloud.http(owner) as h:
        events = h.get("/v1/audit", params={"device_id": device})
    assert events.status_code == 404  # no longer the owner's device


def test_claim_and_unclaim_are_audited(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    cloud.provision(token, device)
    cloud.set_online(device)
    with cloud.http(token) as h:
        h.delete(f"/v1/devices/{device}")
        assert h.post("/v1/devices", data={"id": device}).status_code == 200
        actions = [
            e["action"] for e in h.get("/v1/audit", params={"device_id": device}).json()["events"]
        ]
    assert actions[:4] == ["device.claim", "device.unclaim", "key.upload", "device.create"]


def test_rename_and_notes(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    device = new_device_id()
    cloud.provision(token, device)
    with cloud.http(token) as h:
        renamed = h.put(f"/v1/devices/{device}", data={"name": "kitchen"}).json()
        noted = h.put(f"/v1/devices/{device}", json={"notes": "by the fridge"}).json()
        after = h.get(f"/v1/devices/{device}").json()
        empty = h.put(f"/v1/devices/{device}", json={})
    assert renamed["name"] == "kitchen" and renamed["id"] == device and renamed["updated_at"]
    assert noted["notes"] == "by the fridge"
    assert after["name"] == "kitchen" and after["notes"] == "by the fridge"
    assert empty.status_code == 400 and empty.json()["error"].startswith("name:")


def test_bad_device_id_is_named(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    with cloud.http(token) as h:
        reply = h.post("/v1/devices", data={"id": "not-hex"})
        missing = h.post("/v1/devices", data={})
    assert reply.status_code == 400 and reply.json()["error"].startswith("id:")
    assert missing.status_code == 400 and missing.json()["error"] == "id: is required"


def test_customer_claims_only_in_its_product(cloud: Cloud) -> None:
    owner_email = cloud.user()
    owner = cloud.token_for(owner_email)
    product = cloud.product(owner_email)
    other_product = cloud.product(owner_email)
    client = cloud.two_legged_client(product)
    customer_email = cloud.customer(product)
    customer = cloud.customer_token(client, customer_email)
    inside, outside = new_device_id(), new_device_id()
    assert cloud.provision(owner, inside, product_id=product).status_code == 200
    assert cloud.provision(owner, outside, product_id=other_product).status_code == 200
    with cloud.http(customer) as h:
        assert h.post("/v1/devices", data={"id": outside}).status_code == 404
        assert h.post("/v1/devices", data={"id": inside}).json()["claimed"] is True
        mine = h.get("/v1/devices").json()
        assert [d["id"] for d in mine] == [inside]
        assert mine[0]["owner"] == customer_email
    second = cloud.customer_token(client, cloud.customer(product))
    with cloud.http(second) as h:
        assert h.get(f"/v1/devices/{inside}").status_code == 404
        reply = h.post("/v1/devices", data={"id": inside})
        assert reply.status_code == 403 and "belongs to someone else" in reply.json()["error"]


def test_product_token_lists_product_devices(cloud: Cloud) -> None:
    owner_email = cloud.user()
    owner = cloud.token_for(owner_email)
    product = cloud.product(owner_email)
    device = new_device_id()
    cloud.provision(owner, device, product_id=product)
    product_token = cloud.product_token(cloud.two_legged_client(product))
    with cloud.http(product_token) as h:
        assert [d["id"] for d in h.get("/v1/devices").json()] == [device]
        assert h.get(f"/v1/devices/{device}").json()["product_id"] == product
        refused = h.post("/v1/devices", data={"id": device})
    assert refused.status_code == 403 and "customer token" in refused.json()["error"]
