"""Who owns a device, and what its next holder sees (#10 items 1, 6, 7 and 9), over HTTP against
a real ``fermion serve`` (and the real ``fermion admin``), on SQLite and PostgreSQL.

Each test plays the attack as the issue reports it, then checks the refusal changed nothing the
victim can see, and that the rightful party still has a way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from cloud_harness import PASSWORD, Cloud, new_device_id
from sqlalchemy import select

from fermion.cloud import admin, claimcodes
from fermion.cloud.credentials import hash_token
from fermion.cloud.store import Store
from fermion.cloud.store.models import AuditEvent, ClaimCode, Device, HandshakeOutcome, utcnow


@pytest.fixture(scope="module")
def alpha(cloud: Cloud) -> dict[str, Any]:
    """The attacking product: its Owner, a Developer, and its two-legged client's token."""
    owner, owner_token = cloud.user_token()
    pid = cloud.product(owner)
    dev, dev_token = cloud.member(pid, "developer")
    client = cloud.two_legged_client(pid)
    return {
        "pid": pid,
        "owner": owner_token,
        "dev_email": dev,
        "dev": dev_token,
        "client": client,
        "product_token": cloud.product_token(client),
    }


def _device(cloud: Cloud, device_id: str) -> Device:
    async def get(store: Store) -> Device:
        async with store.read() as session:
            found = await session.get(Device, device_id)
            assert found is not None
            return found

    return cloud.run(get)


def _events(cloud: Cloud, device_id: str) -> list[AuditEvent]:
    async def get(store: Store) -> list[AuditEvent]:
        async with store.read() as session:
            rows = await session.scalars(
                select(AuditEvent).where(AuditEvent.device_id == device_id).order_by(AuditEvent.id)
            )
            return list(rows)

    return cloud.run(get)


def fermion(cloud: Cloud, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FERMION_DATABASE_URL": cloud.server.database_url}
    env.pop("FERMION_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "fermion.cli.main", *args, "--data-dir", str(cloud.server.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- 1. import never takes an owned device ---------------------------------------------------


def test_no_product_can_import_rekey_or_unclaim_a_personal_device(
    cloud: Cloud, alpha: dict[str, Any]
) -> None:
    victim_email, victim = cloud.user_token()
    x = new_device_id()
    assert cloud.provision(victim, x).status_code == 200
    before = _device(cloud, x)
    trail = len(_events(cloud, x))
    path = f"/v1/products/{alpha['pid']}/devices"
    for token, body in [
        (alpha["dev"], {"id": x, "claim_user": alpha["dev_email"]}),
        (alpha["dev"], {"id": x}),
        (alpha["owner"], {"ids": [x]}),
        (alpha["product_token"], {"id": x}),
    ]:
        with cloud.http(token) as h:
            reply = h.post(path, json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["protectedDeviceIds"] == [x], (body, reply.json())
        assert reply.json()["updated"] == 0 and reply.json()["updatedDeviceIds"] == []
    # Re-keying it: with the product named, and as the attacker's own account.
    for token, product_id in [(alpha["dev"], alpha["pid"]), (alpha["dev"], None)]:
        refused = cloud.provision(token, x, product_id=product_id)
        assert refused.status_code in (400, 403), refused.text
        assert refused.json()["ok"] is False
    refused = cloud.provision(alpha["product_token"], x)
    assert refused.status_code == 403 and refused.json()["ok"] is False
    with cloud.http(alpha["product_token"]) as h:
        gone = h.delete(f"/v1/products/{alpha['pid']}/devices/{x}/owner")
    assert gone.status_code == 404 and gone.json()["ok"] is False
    after = _device(cloud, x)
    assert (after.product_id, after.owner_user_id, after.current_key_id) == (
        None,
        before.owner_user_id,
        before.current_key_id,
    )
    assert len(_events(cloud, x)) == trail  # nothing happened, so nothing was recorded
    with cloud.http(victim) as h:
        seen = h.get(f"/v1/devices/{x}")
    assert seen.status_code == 200 and seen.json()["owner"] == victim_email


def test_an_owner_imports_their_own_device_and_claim_user_never_replaces_them(
    cloud: Cloud, alpha: dict[str, Any]
) -> None:
    owner_email, owner = cloud.member(alpha["pid"], "developer")
    x = new_device_id()
    assert cloud.provision(owner, x).status_code == 200
    with cloud.http(owner) as h:
        h.put(f"/v1/devices/{x}", json={"notes": "my desk"})
        reply = h.post(
            f"/v1/products/{alpha['pid']}/devices",
            json={"id": x, "claim_user": alpha["dev_email"]},
        )
    assert reply.status_code == 200 and reply.json()["updatedDeviceIds"] == [x], reply.text
    device = _device(cloud, x)
    assert device.product_id == alpha["pid"]
    with cloud.http(owner) as h:
        assert h.get(f"/v1/devices/{x}").json()["owner"] == owner_email
    # The personal notes do not follow the device into the product's view.
    assert device.notes is None
    (imported,) = [e for e in _events(cloud, x) if e.action == "device.import"]
    assert imported.detail == {"notes": "cleared"}
    assert not [e for e in _events(cloud, x) if e.action == "device.claim"]


def test_a_product_still_imports_what_nobody_owns(cloud: Cloud, alpha: dict[str, Any]) -> None:
    x, fresh = new_device_id(), new_device_id()
    _, someone = cloud.user_token()
    assert cloud.provision(someone, x).status_code == 200
    with cloud.http(someone) as h:
        assert h.delete(f"/v1/devices/{x}").json() == {"ok": True}  # released
    with cloud.http(alpha["dev"]) as h:
        reply = h.post(
            f"/v1/products/{alpha['pid']}/devices",
            json={"ids": [x, fresh], "claim_user": alpha["dev_email"]},
        )
    assert reply.json()["updatedDeviceIds"] == [x, fresh], reply.text
    assert reply.json()["protectedDeviceIds"] == []
    with cloud.http(alpha["dev"]) as h:
        for device_id in (x, fresh):
            assert h.get(f"/v1/devices/{device_id}").json()["owner"] == alpha["dev_email"]


# --- 6. claiming by id needs the device connected ---------------------------------------------


def _claim(cloud: Cloud, token: str, device_id: str) -> Any:
    with cloud.http(token) as h:
        return h.post("/v1/devices", data={"id": device_id})


def _refused_offline(reply: Any, device_id: str) -> None:
    assert reply.status_code == 403, reply.text
    body = reply.json()
    assert body["ok"] is False and body["error"].startswith(f"id: device {device_id} is not")
    assert "online" in body["error"]


def test_an_offline_released_or_removed_device_cannot_be_claimed_by_id(
    cloud: Cloud, alpha: dict[str, Any]
) -> None:
    _, first = cloud.user_token()
    outsider_email, outsider = cloud.user_token()
    released, removed = new_device_id(), new_device_id()
    assert cloud.provision(first, released).status_code == 200
    with cloud.http(first) as h:
        h.delete(f"/v1/devices/{released}")
    with cloud.http(alpha["dev"]) as h:
        h.post(f"/v1/products/{alpha['pid']}/devices", json={"id": removed})
        assert h.delete(f"/v1/products/{alpha['pid']}/devices/{removed}").status_code == 204
    for x in (released, removed):
        _refused_offline(_claim(cloud, outsider, x), x)
        after = _device(cloud, x)
        assert (after.owner_user_id, after.owner_customer_id) == (None, None)
    # Connected, the one near it claims it, as at Particle.
    cloud.set_online(released)
    assert _claim(cloud, outsider, released).json()["claimed"] is True
    with cloud.http(outsider) as h:
        assert h.get(f"/v1/devices/{released}").json()["owner"] == outsider_email


def test_product_devices_offline_claimable_only_by_the_product_acting(
    cloud: Cloud, alpha: dict[str, Any]
) -> None:
    pid = alpha["pid"]
    app_client = cloud.run(admin.create_client, str(pid), "app", "installed")
    a, b, c, d = (new_device_id() for _ in range(4))
    with cloud.http(alpha["dev"]) as h:
        h.post(f"/v1/products/{pid}/devices", json={"ids": [a, b, c, d]})
    # A customer logged in through an app: its word only; the device must be online.
    shopper = cloud.customer(pid, password="shopper-pass")
    app_token = cloud.login(
        shopper, "shopper-pass", client_id=app_client[0], client_secret=app_client[1]
    )
    _refused_offline(_claim(cloud, app_token, a), a)
    assert _device(cloud, a).owner_customer_id is None
    cloud.set_online(a)
    assert _claim(cloud, app_token, a).json()["claimed"] is True
    # The two-legged repair's "claim back with a customer token" step: the product acting.
    two_legged = cloud.customer_token(alpha["client"], cloud.customer(pid))
    assert _claim(cloud, two_legged, b).json()["claimed"] is True
    # A team member allowed to claim (Developer or above) claims offline; Support may not.
    assert _claim(cloud, alpha["dev"], c).json()["claimed"] is True
    _, support = cloud.member(pid, "support")
    refused = _claim(cloud, support, d)
    assert refused.status_code == 403 and "Developer role or above" in refused.json()["error"]
    assert _device(cloud, d).owner_user_id is None


# --- 7. a squatted device id has an audited way back ------------------------------------------


def test_a_squatted_device_id_goes_back_to_its_product_through_the_admin(
    cloud: Cloud, alpha: dict[str, Any]
) -> None:
    _, squatter = cloud.user_token()
    x = new_device_id()
    assert cloud.provision(squatter, x).status_code == 200  # before the product ever saw x
    refused = cloud.provision(alpha["dev"], x, product_id=alpha["pid"])
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error.startswith(f"product_id: device {x} is in no product")
    assert f"fermion admin assign-device {x} --product {alpha['pid']} --release" in error
    with cloud.http(alpha["dev"]) as h:
        imported = h.post(f"/v1/products/{alpha['pid']}/devices", json={"id": x}).json()
    assert imported["protectedDeviceIds"] == [x]
    moved = fermion(
        cloud,
        "admin",
        "assign-device",
        x,
        "--product",
        str(alpha["pid"]),
        "--release",
        "--reason",
        "ticket 42",
    )
    assert moved.returncode == 0, moved.stderr
    assert f"device {x}:" in moved.stdout
    device = _device(cloud, x)
    assert (device.product_id, device.owner_user_id) == (alpha["pid"], None)
    (assigned,) = [e for e in _events(cloud, x) if e.action == "device.assign"]
    assert assigned.actor == "admin:cli" and assigned.product_id == alpha["pid"]
    assert assigned.detail["reason"] == "ticket 42"
    assert assigned.detail["after"] == {"product_id": alpha["pid"], "owner": None}
    assert assigned.detail["before"]["product_id"] is None
    # The product's team sends the real key; the squatter has lost the device and its key.
    assert cloud.provision(alpha["dev"], x, product_id=alpha["pid"]).status_code == 200
    with cloud.http(squatter) as h:
        assert h.get(f"/v1/devices/{x}").status_code == 404
    again = cloud.provision(squatter, x)
    assert again.status_code == 403 and again.json()["ok"] is False


def test_assign_device_names_what_is_wrong(cloud: Cloud, alpha: dict[str, Any]) -> None:
    x = new_device_id()
    nothing = fermion(cloud, "admin", "assign-device", x, "--release")
    assert nothing.returncode != 0 and f"device: {x} not found" in nothing.stderr
    bad = fermion(cloud, "admin", "assign-device", "zz", "--release")
    assert bad.returncode != 0 and "not a device id" in bad.stderr
    empty = fermion(cloud, "admin", "assign-device", x)
    assert empty.returncode != 0 and "--product" in empty.stderr


# --- 9. history and notes belong to the owner they happened under -----------------------------


def test_the_next_holder_sees_neither_the_previous_trail_nor_notes(
    cloud: Cloud, alpha: dict[str, Any]
) -> None:
    pid = alpha["pid"]
    x = new_device_id()
    secret = "customer site: 12 Secret Road"
    with cloud.http(alpha["dev"]) as h:
        h.post(f"/v1/products/{pid}/devices", json={"id": x})
    first = cloud.customer(pid)
    first_token = cloud.customer_token(alpha["client"], first)
    assert _claim(cloud, first_token, x).json()["claimed"] is True
    with cloud.http(first_token) as h:
        assert h.put(f"/v1/devices/{x}", json={"name": "porch"}).status_code == 200
    with cloud.http(alpha["dev"]) as h:
        h.put(f"/v1/products/{pid}/devices/{x}", json={"notes": secret})
        assert h.delete(f"/v1/products/{pid}/devices/{x}/owner").json() == {"ok": True}
    # The next customer of the same product.
    second_token = cloud.customer_token(alpha["client"], cloud.customer(pid))
    assert _claim(cloud, second_token, x).json()["claimed"] is True
    with cloud.http(second_token) as h:
        assert h.get(f"/v1/devices/{x}").json()["notes"] is None
    # The product lets it go; a user near it claims it; and another product imports it.
    with cloud.http(alpha["dev"]) as h:
        h.put(f"/v1/products/{pid}/devices/{x}", json={"notes": secret})
        assert h.delete(f"/v1/products/{pid}/devices/{x}").status_code == 204
    new_email, new_owner = cloud.user_token()
    cloud.set_online(x)
    assert _claim(cloud, new_owner, x).json()["claimed"] is True
    with cloud.http(new_owner) as h:
        shown = h.get(f"/v1/devices/{x}").json()
        trail = h.get("/v1/audit", params={"device_id": x}).json()["events"]
        everything = h.get("/v1/audit").json()["events"]
    assert shown["owner"] == new_email and shown["notes"] is None
    assert [e["action"] for e in trail] == ["device.claim"]
    assert [e["action"] for e in everything if e["device_id"] == x] == ["device.claim"]
    assert secret not in str(trail) and first not in str(everything)
    # Another product, with the new owner's consent: its team sees only its own part.
    beta_owner, beta_token = cloud.user_token()
    beta = cloud.product(beta_owner)
    cloud.run(admin.set_member_role, str(beta), new_email, "developer")
    with cloud.http(new_owner) as h:
        h.put(f"/v1/devices/{x}", json={"notes": "mine"})
        moved = h.post(f"/v1/products/{beta}/devices", json={"id": x}).json()
    assert moved["updatedDeviceIds"] == [x]
    with cloud.http(beta_token) as h:
        seen = h.get("/v1/audit", params={"device_id": x}).json()["events"]
        shown = h.get(f"/v1/products/{beta}/devices/{x}").json()
    assert [e["action"] for e in seen] == ["device.import"] and shown["notes"] is None
    # The old team keeps its own history (the product it happened in).
    with cloud.http(alpha["owner"]) as h:
        kept = h.get("/v1/audit", params={"product_id": pid}).json()["events"]
    assert any(e["device_id"] == x and e["action"] == "device.edit" for e in kept)
    # Every clearing of notes is on the trail.
    cleared = [e.action for e in _events(cloud, x) if (e.detail or {}).get("notes") == "cleared"]
    # (the team's unclaim, the customer's unclaim on removal, the import into beta)
    assert cleared == ["device.unclaim", "device.unclaim", "device.import"]


# --- 6. claim codes -----------------------------------------------------------------------------


def _redeem(cloud: Cloud, device_id: str, code: str, later: timedelta | None = None) -> Any:
    """What the device server does when a connected device presents its claim code."""

    async def go(store: Store) -> Any:
        async with store.write() as session:
            now = utcnow() + later if later is not None else None
            return await claimcodes.redeem(session, device_id, code, now=now)

    return cloud.run(go)


def test_a_users_claim_code_claims_once_and_is_stored_hashed(cloud: Cloud) -> None:
    email, user = cloud.user_token()
    mine, released, other = new_device_id(), new_device_id(), new_device_id()
    assert cloud.provision(user, mine).status_code == 200
    _, someone = cloud.user_token()
    for x in (released, other):
        assert cloud.provision(someone, x).status_code == 200
        with cloud.http(someone) as h:
            h.delete(f"/v1/devices/{x}")
    with cloud.http(user) as h:
        reply = h.post("/v1/device_claims", data={})
    assert reply.status_code == 200, reply.text
    code = reply.json()["claim_code"]
    assert reply.json()["device_ids"] == [mine] and 0 < len(code) <= 63

    async def stored(store: Store) -> list[tuple[str, ...]]:
        async with store.read() as session:
            rows = (await session.execute(select(ClaimCode.code_hash))).all()
            return [tuple(r) for r in rows]

    assert (hash_token(code),) in cloud.run(stored)
    assert code not in str(cloud.run(stored))
    assert _redeem(cloud, released, code + "x") is None
    assert _redeem(cloud, released, code, later=timedelta(hours=2)) is None  # expired
    assert _redeem(cloud, released, code).owner == f"user:{email}"
    assert _redeem(cloud, other, code) is None  # single use
    with cloud.http(user) as h:
        assert h.get(f"/v1/devices/{released}").json()["owner"] == email
        trail = h.get("/v1/audit", params={"device_id": released}).json()["events"]
    assert [e["action"] for e in trail][:1] == ["device.claim"]
    assert trail[0]["detail"]["via"] == "claim_code"
    assert _device(cloud, other).owner_user_id is None


def test_a_products_claim_code_is_a_customers(cloud: Cloud, alpha: dict[str, Any]) -> None:
    pid = alpha["pid"]
    shopper = cloud.customer(pid)
    path = f"/v1/products/{pid}/device_claims"
    with cloud.http(alpha["product_token"]) as h:
        missing = h.post(path, data={})
        named = h.post(path, data={"customer": shopper})
    assert missing.status_code == 400 and missing.json()["error"].startswith("customer:")
    assert named.status_code == 200 and named.json()["device_ids"] == []
    with cloud.http(alpha["dev"]) as h:
        team = h.post(path, data={})
    assert team.status_code == 403 and "customer token" in team.json()["error"]
    with cloud.http(cloud.customer_token(alpha["client"], shopper)) as h:
        own = h.post(path, data={})
    assert own.status_code == 200
    inside, outside = new_device_id(), new_device_id()
    with cloud.http(alpha["dev"]) as h:
        h.post(f"/v1/products/{pid}/devices", json={"id": inside})
    _, someone = cloud.user_token()
    assert cloud.provision(someone, outside).status_code == 200
    with cloud.http(someone) as h:
        h.delete(f"/v1/devices/{outside}")
    assert _redeem(cloud, outside, own.json()["claim_code"]) is None  # not the product's device
    assert _redeem(cloud, inside, named.json()["claim_code"]).owner.startswith(
        f"customer:{shopper}"
    )
    assert _device(cloud, outside).owner_customer_id is None


def test_the_console_device_page_shows_the_new_owner_none_of_the_past(cloud: Cloud) -> None:
    _, first = cloud.user_token()
    x = new_device_id()
    assert cloud.provision(first, x).status_code == 200
    with cloud.http(first) as h:
        h.put(f"/v1/devices/{x}", json={"notes": "customer site: 12 Secret Road"})
        h.delete(f"/v1/devices/{x}")

    async def connected_before(store: Store) -> None:
        async with store.write() as session:
            session.add(HandshakeOutcome(device_id=x, remote_address="198.51.100.7", outcome="ok"))

    cloud.run(connected_before)
    second = cloud.user(password=PASSWORD)
    cloud.set_online(x)
    assert _claim(cloud, cloud.token_for(second), x).json()["claimed"] is True
    # The console's cookies are Secure (browsers keep them on loopback; httpx does not), so
    # they are carried by hand.
    with cloud.http() as h:
        form = h.get("/console/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        login_cookie = form.cookies.get("fermion_console_login")
        logged_in = h.post(
            "/console/login",
            data={"username": second, "password": PASSWORD, "csrf_token": csrf.group(1)},
            headers={"Cookie": f"fermion_console_login={login_cookie}"},
        )
        assert logged_in.status_code == 303, logged_in.text
        session = logged_in.cookies.get("fermion_console")
        h.cookies.clear()
        page = h.get(f"/console/devices/{x}", headers={"Cookie": f"fermion_console={session}"})
    assert page.status_code == 200, page.text
    events = page.text[page.text.index('<ul class="events">') :]
    events = events[: events.index("</ul>")]
    assert f"device.claim by user:{second}" in events
    assert "key.upload" not in events and "device.unclaim" not in events
    assert "Secret Road" not in page.text and "198.51.100.7" not in page.text
