"""Fermion's key endpoints: history, presented keys, restore, atomic repair."""

from __future__ import annotations

from cloud_harness import Cloud, device_pub_pem, new_device_id


def _product_device(cloud: Cloud) -> tuple[int, str, str, str]:
    """(product, owner token, device id, its first key PEM)."""
    owner = cloud.user()
    token = cloud.token_for(owner)
    product = cloud.product(owner)
    device = new_device_id()
    pem = device_pub_pem()
    assert cloud.provision(token, device, pem, product_id=product).status_code == 200
    return product, token, device, pem


def test_approve_a_presented_key(cloud: Cloud) -> None:
    product, _, device, first = _product_device(cloud)
    dev_email, dev = cloud.member(product, "developer")
    presented = device_pub_pem()
    cid = cloud.add_candidate(device, presented)
    with cloud.http(dev) as h:
        pending = h.get(f"/v1/devices/{device}/keys/candidates", params={"status": "pending"})
        assert [c["id"] for c in pending.json()["candidates"]] == [cid]
        assert pending.json()["candidates"][0]["possession_proven"] is True
        assert pending.json()["candidates"][0]["public_key"] == presented
        approved = h.post(f"/v1/devices/{device}/keys/candidates/{cid}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["candidate"]["status"] == "approved"
        history = h.get(f"/v1/devices/{device}/keys").json()
        again = h.post(f"/v1/devices/{device}/keys/candidates/{cid}/approve")
        events = h.get(
            "/v1/audit", params={"device_id": device, "action": "key.candidate.approve"}
        ).json()["events"]
    assert history["keys"][0]["public_key"] == presented
    assert history["keys"][0]["source"] == "approval"
    assert history["keys"][1]["public_key"] == first  # kept, not overwritten
    assert again.status_code == 409
    assert len(events) == 1 and events[0]["actor"] == f"user:{dev_email}"
    assert events[0]["after_fingerprint"] == history["current_fingerprint"]
    assert events[0]["before_fingerprint"] == history["keys"][1]["fingerprint"]


def test_reject_a_presented_key(cloud: Cloud) -> None:
    _, owner, device, first = _product_device(cloud)
    cid = cloud.add_candidate(device, device_pub_pem())
    with cloud.http(owner) as h:
        reply = h.post(f"/v1/devices/{device}/keys/candidates/{cid}/reject")
        assert reply.json()["candidate"]["status"] == "rejected"
        keys = h.get(f"/v1/devices/{device}/keys").json()["keys"]
        rejected = h.get(
            "/v1/audit", params={"device_id": device, "action": "key.candidate.reject"}
        ).json()
    assert [k["public_key"] for k in keys] == [first]
    assert len(rejected["events"]) == 1


def test_support_may_look_but_not_approve(cloud: Cloud) -> None:
    product, _, device, _ = _product_device(cloud)
    _, support = cloud.member(product, "support")
    cid = cloud.add_candidate(device, device_pub_pem())
    with cloud.http(support) as h:
        assert h.get(f"/v1/devices/{device}/keys/candidates").status_code == 200
        reply = h.post(f"/v1/devices/{device}/keys/candidates/{cid}/approve")
    assert reply.status_code == 403
    assert "needs the Developer role or above" in reply.json()["error"]


def test_uploading_a_presented_key_settles_its_candidate(cloud: Cloud) -> None:
    product, owner, device, _ = _product_device(cloud)
    presented = device_pub_pem()
    cloud.add_candidate(device, presented)
    cloud.provision(owner, device, presented, product_id=product)
    with cloud.http(owner) as h:
        pending = h.get(f"/v1/devices/{device}/keys/candidates", params={"status": "pending"})
    assert pending.json()["candidates"] == []


def test_restore_an_older_version(cloud: Cloud) -> None:
    product, owner, device, first = _product_device(cloud)
    cloud.provision(owner, device, device_pub_pem(), product_id=product)
    with cloud.http(owner) as h:
        reply = h.post(f"/v1/devices/{device}/keys/1/restore")
        keys = h.get(f"/v1/devices/{device}/keys").json()["keys"]
        missing = h.post(f"/v1/devices/{device}/keys/9/restore")
    assert reply.json()["key_version"] == 3
    assert keys[0]["public_key"] == first and keys[0]["source"] == "restore"
    assert missing.status_code == 404


def test_atomic_repair_keeps_the_customer_claim(cloud: Cloud) -> None:
    product, _, device, first = _product_device(cloud)
    client = cloud.two_legged_client(product)
    customer = cloud.customer(product)
    customer_token = cloud.customer_token(client, customer)
    with cloud.http(customer_token) as h:
        assert h.post("/v1/devices", data={"id": device}).status_code == 200
    dev_email, dev = cloud.member(product, "developer")
    fresh = device_pub_pem()
    with cloud.http(dev) as h:
        reply = h.post(
            f"/v1/devices/{device}/keys/repair", data={"publicKey": fresh, "algorithm": "rsa"}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["owner"] == customer
        info = h.get(f"/v1/devices/{device}").json()
        keys = h.get(f"/v1/devices/{device}/keys").json()["keys"]
        events = h.get("/v1/audit", params={"device_id": device, "action": "key.repair"}).json()
    assert info["owner"] == customer and info["customer"] == customer
    assert keys[0]["public_key"] == fresh and keys[0]["source"] == "repair"
    assert keys[1]["public_key"] == first
    (event,) = events["events"]
    assert event["actor"] == f"user:{dev_email}" and event["detail"]["owner"] == customer
    with cloud.http(customer_token) as h:
        assert [d["id"] for d in h.get("/v1/devices").json()] == [device]


def test_repair_refused_below_developer_and_for_customers(cloud: Cloud) -> None:
    product, _, device, _ = _product_device(cloud)
    client = cloud.two_legged_client(product)
    customer_token = cloud.customer_token(client, cloud.customer(product))
    with cloud.http(customer_token) as h:
        h.post("/v1/devices", data={"id": device})
        as_customer = h.post(
            f"/v1/devices/{device}/keys/repair", data={"publicKey": device_pub_pem()}
        )
    _, viewer = cloud.member(product, "view_only")
    with cloud.http(viewer) as h:
        as_viewer = h.post(
            f"/v1/devices/{device}/keys/repair", data={"publicKey": device_pub_pem()}
        )
    assert as_customer.status_code == 403 and "customer token" in as_customer.json()["error"]
    assert as_viewer.status_code == 403 and "Developer" in as_viewer.json()["error"]


def test_key_history_of_unknown_device(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    with cloud.http(token) as h:
        reply = h.get(f"/v1/devices/{new_device_id()}/keys")
    assert reply.status_code == 404


def test_server_keys_are_public(cloud: Cloud) -> None:
    import httpx

    keys = httpx.get(f"{cloud.base_url}/v1/server-keys").json()["keys"]
    assert keys[0]["algorithm"] == "rsa" and keys[0]["state"] == "current"
    assert keys[0]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in str(keys)
