"""DESIGN.md's repair table, row by row, end to end: the cloud on loopback, simulated devices,
the CLI as a subprocess. Each test breaks a device the way the seed describes, repairs it with
the one command Fermion offers, and checks that the cloud and the device agree on the key, that
no other device, claim or key changed, and that the audit log says who did it.
"""

from __future__ import annotations

import itertools
import signal
import stat
import time
from typing import Any

import pytest

from harness import stop_process, wait_until
from scenarios.repair_harness import Cloud, has_command

pytestmark = pytest.mark.integration

_n = itertools.count()
NO_DEVICE_SERVER = (
    "devserver: `fermion sim run` (simulated devices online) and the device server inside "
    "`fermion serve` have not landed, so 'the device comes online' cannot be observed"
)


def require_online(cloud: Cloud, device: str, profile: str) -> None:
    """The last check of a scenario: the device handshakes with the repaired key."""
    if not has_command("sim", "run") or not cloud.device_port:
        pytest.xfail(NO_DEVICE_SERVER)
    if device not in cloud.running:  # a repair that waits for it online already started it
        cloud.run_devices(device)
    cloud.wait_online(profile, device, device_key(cloud, device))


def power_on(cloud: Cloud, device: str) -> None:
    """Run the device before a repair that must succeed: a repair is done only when the
    device is seen online with the new key (issue #12 item 3), so it has to be running."""
    if not has_command("sim", "run") or not cloud.device_port:
        pytest.xfail(NO_DEVICE_SERVER)
    cloud.run_devices(device)


def device_key(cloud: Cloud, device: str) -> str | None:
    info = cloud.cli("sim", "inspect", device, "--json").json
    fp = (info.get("device_key") or {}).get("fingerprint") or {}
    return fp.get("sha256")


def team(cloud: Cloud) -> dict[str, Any]:
    """A product with an owner, a member of every role, a two-legged client, two customers."""
    n = next(_n)
    people = {}
    for role in ("owner", "administrator", "developer", "support", "view_only"):
        people[role] = cloud.user(f"{role}{n}@example.com")
    product = cloud.product(f"Widget {n}", f"owner{n}@example.com")
    for role in ("administrator", "developer", "support", "view_only"):
        cloud.role(product, f"{role}{n}@example.com", role)
    cloud.two_legged_client(product)
    customers = [f"cust{n}a@example.com", f"cust{n}b@example.com"]
    for email in customers:
        cloud.cli("customer", "create", str(product), email, profile=people["owner"])
    return {"n": n, "product": product, "people": people, "customers": customers}


def product_device(cloud: Cloud, t: dict[str, Any], claim: str | None = None) -> str:
    """A simulated device in the product, its key in the cloud; ``claim``: an owner's profile,
    a customer email, or None (unclaimed)."""
    device = cloud.sim()
    pub, _ = cloud.saved_key(device)
    owner = t["people"]["owner"]
    cloud.cli("keys", "send", device, str(pub), "--product_id", str(t["product"]), profile=owner)
    if claim is not None and "@" in claim:
        token = cloud.customer_token(t["product"], claim)
        cloud.cli("device", "claim", device, profile="x", FERMION_TOKEN=token)
    elif claim is not None:
        cloud.cli("device", "claim", device, profile=claim)
    return device


def brownout(cloud: Cloud, device: str, server_key: bool = True) -> str:
    """Erase the DCT (Gen 2 brownout): the device makes a new key the cloud does not hold, and
    loses the server key. ``server_key``: the person at the device then runs `keys server`
    (no login needed: it asks the cloud for its key), as the seed's first step says."""
    before = device_key(cloud, device)
    cloud.cli("sim", "fault", device, "--brownout")
    after = device_key(cloud, device)
    assert after and after != before
    if server_key:
        cloud.cli("keys", "server", "--device", device, profile="at-the-device")
    return after


def audit_actions(cloud: Cloud, profile: str, device: str) -> list[tuple[str, str]]:
    return [(e["actor"], e["action"]) for e in cloud.audit(profile, device)]


# --- wrong server key on device -------------------------------------------------------------


def test_wrong_server_key_is_fixed_by_keys_server_from_the_cloud(cloud: Cloud, tmp_path) -> None:
    who = cloud.user(f"srv{next(_n)}@example.com")
    device = cloud.sim()
    pub, _ = cloud.saved_key(device)
    cloud.cli("keys", "send", device, str(pub), profile=who)
    # Another cloud's key: RSA-2048 like a real server key.
    from fermion.keys import Algorithm, generate_server_key, public_key_pem

    other = tmp_path / "other-cloud-server.pub.pem"
    other.write_bytes(public_key_pem(generate_server_key(Algorithm.RSA).public_key()))
    cloud.cli("sim", "fault", device, "--server-key", str(other))
    cloud_key = cloud.api(None, "GET", "/v1/server-keys")["keys"][0]["fingerprint"]
    info = cloud.cli("sim", "inspect", device, "--json").json
    assert info["server_key"]["fingerprint"]["sha256"] != cloud_key

    cloud.cli("keys", "server", "--device", device, profile=who)

    info = cloud.cli("sim", "inspect", device, "--json").json
    assert info["server_key"]["fingerprint"]["sha256"] == cloud_key
    assert info["server_address"]["stored"]["host"] == "127.0.0.1"
    require_online(cloud, device, who)


# --- development device ---------------------------------------------------------------------


def test_development_device_keys_doctor(cloud: Cloud) -> None:
    who = cloud.user(f"devdoc{next(_n)}@example.com")
    device, bystander = cloud.sim(), cloud.sim()
    for d in (device, bystander):
        pub, _ = cloud.saved_key(d)
        cloud.cli("keys", "send", d, str(pub), profile=who)
    before = cloud.snapshot(who, [bystander])
    brownout(cloud, device, server_key=False)  # the doctor puts the cloud's server key back
    power_on(cloud, device)

    out = cloud.cli("keys", "doctor", device, "--json", profile=who).json
    assert out["online"] is True and out["left_to_do"] is None

    on_device = device_key(cloud, device)
    assert out["fingerprint"] == on_device
    # The new private key is kept in the data directory, private, not where the command ran.
    assert not list(cloud.home.glob(f"{device}_*")) and not list(cloud.home.glob("pre_*"))
    folder = cloud.home / "keys" / device
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    private = [p for p in folder.iterdir() if not p.name.endswith(".pub.pem")]
    assert private and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)
    assert cloud.snapshot(who, [device])[device][3] == on_device
    assert cloud.snapshot(who, [bystander]) == before
    assert any(a == "key.upload" and who in actor for actor, a in audit_actions(cloud, who, device))
    require_online(cloud, device, who)


# --- product device claimed to one account, and unclaimed product device --------------------


@pytest.mark.parametrize("claimed", [True, False], ids=["one-account", "unclaimed"])
def test_product_device_customer_saves_team_member_sends(cloud: Cloud, claimed: bool) -> None:
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    device = product_device(cloud, t, claim=owner if claimed else None)
    bystander = product_device(cloud, t, claim=t["customers"][0])
    before = cloud.snapshot(owner, [device, bystander])
    brownout(cloud, device)

    # On the customer's computer: `keys save`; the .pub.pem is mailed to the team member.
    pub, fp = cloud.saved_key(device)
    cloud.cli("keys", "send", "--product_id", str(t["product"]), device, str(pub), profile=dev)

    after = cloud.snapshot(owner, [device, bystander])
    assert after[device][3] == fp == device_key(cloud, device)
    assert after[device][:3] == before[device][:3]  # same owner, customer, product
    assert after[bystander] == before[bystander]
    actions = audit_actions(cloud, owner, device)
    assert any(a == "key.upload" and f"developer{t['n']}@" in actor for actor, a in actions)
    require_online(cloud, device, owner)


@pytest.mark.parametrize("claimed", [True, False], ids=["one-account", "unclaimed"])
def test_product_device_keys_repair_with_the_customers_key(cloud: Cloud, claimed: bool) -> None:
    t = team(cloud)
    owner, admin = t["people"]["owner"], t["people"]["administrator"]
    device = product_device(cloud, t, claim=owner if claimed else None)
    before = cloud.snapshot(owner, [device])
    brownout(cloud, device)
    pub, fp = cloud.saved_key(device)

    plan = cloud.cli(
        "keys", "repair", device, "--key", str(pub), "--dry-run", "--json", profile=admin
    ).json
    assert plan["plan"][0] == "send" and plan["done"] is False
    assert cloud.snapshot(owner, [device]) == before  # a dry run changes nothing

    power_on(cloud, device)
    done = cloud.cli("keys", "repair", device, "--key", str(pub), profile=admin)
    assert "is online with the new key" in done.out
    after = cloud.snapshot(owner, [device])
    assert after[device][3] == fp and after[device][:3] == before[device][:3]


# --- two-legged customer device -------------------------------------------------------------


def test_two_legged_customer_device_atomic_repair(cloud: Cloud) -> None:
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    device = product_device(cloud, t, claim=t["customers"][0])
    other = product_device(cloud, t, claim=t["customers"][1])
    before = cloud.snapshot(owner, [device, other])
    brownout(cloud, device)
    pub, fp = cloud.saved_key(device)

    # Particle's /v1/provisioning refuses a customer's device; the error says what to do.
    r = cloud.cli(
        "keys", "send", device, str(pub), "--product_id", str(t["product"]), profile=dev, ok=False
    )
    assert r.code == 1 and "keys repair" in r.err

    power_on(cloud, device)
    out = cloud.cli("keys", "repair", device, "--key", str(pub), "--json", profile=dev).json
    assert out["plan"][0] == "atomic_repair" and out["online"] is True
    after = cloud.snapshot(owner, [device, other])
    assert after[device][3] == fp == device_key(cloud, device)
    assert after[device][1] == t["customers"][0]  # the customer keeps the device
    assert after[other] == before[other]
    assert any(a == "key.repair" for _, a in audit_actions(cloud, owner, device))
    require_online(cloud, device, owner)


def test_two_legged_customer_device_particle_compatible(cloud: Cloud) -> None:
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    device = product_device(cloud, t, claim=t["customers"][0])
    brownout(cloud, device)
    pub, fp = cloud.saved_key(device)
    cid, secret = cloud.clients[str(t["product"])]
    power_on(cloud, device)

    out = cloud.cli(
        "keys",
        "repair",
        device,
        "--key",
        str(pub),
        "--particle-compatible",
        "--json",
        profile=dev,
        FERMION_CLIENT_ID=cid,
        FERMION_CLIENT_SECRET=secret,
    ).json
    assert out["plan"][:4] == ["unclaim", "send", "customer_token", "claim_as_customer"]
    assert out["online"] is True
    after = cloud.snapshot(owner, [device])[device]
    assert after[3] == fp and after[1] == t["customers"][0]
    actions = [a for _, a in audit_actions(cloud, owner, device)]
    assert "key.upload" in actions


def test_particle_compatible_claims_back_when_a_later_step_fails(cloud: Cloud) -> None:
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    device = product_device(cloud, t, claim=t["customers"][0])
    pub, _ = cloud.saved_key(device)
    cid, secret = cloud.clients[str(t["product"])]
    before = cloud.snapshot(owner, [device])

    # A wrong client secret makes step 3 (the customer token) fail after the unclaim.
    r = cloud.cli(
        "keys",
        "repair",
        device,
        "--key",
        str(pub),
        "--particle-compatible",
        profile=dev,
        ok=False,
        FERMION_CLIENT_ID=cid,
        FERMION_CLIENT_SECRET=secret[::-1],
    )
    assert r.code == 1 and "step" in r.err
    assert cloud.snapshot(owner, [device])[device][1] is None or "ALSO failed" in r.err
    # With the right secret the device would have been claimed back; with a wrong one it
    # cannot be, and the message says how to do it by hand.
    assert "ALSO failed" in r.err and t["customers"][0] in r.err
    token = cloud.customer_token(t["product"], t["customers"][0])
    cloud.cli("device", "claim", device, profile="x", FERMION_TOKEN=token)
    assert cloud.snapshot(owner, [device]) == before


# --- keys regenerated on the device: DeviceKeyHelperRK --------------------------------------


def test_key_backup_restores_the_old_key(cloud: Cloud) -> None:
    if not has_command("sim", "run") or not cloud.device_port:
        pytest.xfail(NO_DEVICE_SERVER)
    who = cloud.user(f"rk{next(_n)}@example.com")
    device = cloud.cli(
        *("sim", "create", "-p", "photon", "--key-backup", "eeprom", "--json"),
        *("--server-key", str(cloud.server_key_file()), "--host", "127.0.0.1"),
        *("--port", str(cloud.device_port)),
    ).json[0]["id"]
    assert cloud.cli("sim", "inspect", device, "--json").json["key_backup"] == "eeprom"
    pub1, fp1 = cloud.saved_key(device)
    cloud.cli("keys", "send", device, str(pub1), profile=who)
    runner = cloud.run_devices(device)
    cloud.wait_online(who, device, fp1)
    # Working keys backed up.
    wait_until(lambda: backup_event(cloud, device) == "saved", "key backup saved", timeout=90)
    stop_process(runner, signal.SIGINT, group=True)
    wait_until(
        lambda: not cloud.api(who, "GET", f"/v1/devices/{device}").get("online"),
        "device offline",
        timeout=90,
    )

    # Brownout: Device OS makes a new key; the customer saves it and mails it to the team.
    fp2 = brownout(cloud, device)
    pub2, _ = cloud.saved_key(device)
    cloud.run_devices(device)
    # The cloud refuses the new key; the helper restores the backup and resets the device.
    cloud.wait_online(who, device, fp1)
    assert device_key(cloud, device) == fp1 != fp2
    assert backup_event(cloud, device) == "restored"
    info = cloud.cli("sim", "inspect", device).out
    assert "key backup      eeprom" in info and "restored" in info

    # The team member uploads the mailed key, now stale: the device presents version 1 again.
    cloud.cli("keys", "send", device, str(pub2), profile=who)
    path = f"/v1/devices/{device}/keys/candidates"

    def restored_candidate() -> dict[str, Any] | None:
        for c in cloud.api(who, "GET", path)["candidates"]:
            if c["fingerprint"] == fp1 and c["restored_from"]:
                return dict(c)
        return None

    wait_until(restored_candidate, "restored candidate", timeout=90)
    candidate = restored_candidate()
    assert candidate is not None and candidate["status"] == "pending"  # never auto-accepted
    assert candidate["restored_from"]["version"] == 1
    assert "matches version 1" in candidate["restored_from"]["message"]
    assert cloud.snapshot(who, [device])[device][3] == fp2

    # The one-click fix the message names.
    cloud.api(who, "POST", candidate["restored_from"]["restore"])
    cloud.wait_online(who, device, fp1)
    assert any(
        a == "key.restore" and who in actor for actor, a in audit_actions(cloud, who, device)
    )


def backup_event(cloud: Cloud, device: str) -> str | None:
    status = cloud.cli("sim", "inspect", device, "--json").json["status"]
    return (status.get("key_backup") or {}).get("event")


# --- View-only / Support member -------------------------------------------------------------


@pytest.mark.parametrize("role", ["view_only", "support"])
def test_view_only_and_support_are_refused_and_nothing_changes(cloud: Cloud, role: str) -> None:
    t = team(cloud)
    owner, member = t["people"]["owner"], t["people"][role]
    devices = [
        product_device(cloud, t, claim=owner),
        product_device(cloud, t),
        product_device(cloud, t, claim=t["customers"][0]),
    ]
    before = cloud.snapshot(owner, devices)
    flash_before = {d: device_key(cloud, d) for d in devices}
    pid = str(t["product"])
    for d in devices:
        pub, _ = cloud.saved_key(d)
        for args in (
            ("keys", "send", d, str(pub), "--product_id", pid),
            ("keys", "repair", d, "--key", str(pub)),
            ("keys", "doctor", d),
        ):
            r = cloud.cli(*args, profile=member, ok=False)
            assert r.code == 1, args
            assert "Developer role or above" in r.err, (args, r.err)
            assert r.err.startswith("error:")
    assert cloud.snapshot(owner, devices) == before
    assert {d: device_key(cloud, d) for d in devices} == flash_before


def test_a_customer_cannot_touch_another_customers_device(cloud: Cloud) -> None:
    t = team(cloud)
    owner = t["people"]["owner"]
    mine = product_device(cloud, t, claim=t["customers"][0])
    theirs = product_device(cloud, t, claim=t["customers"][1])
    before = cloud.snapshot(owner, [mine, theirs])
    token = cloud.customer_token(t["product"], t["customers"][0])
    pub, _ = cloud.saved_key(theirs)
    for args in (
        ("device", "unclaim", theirs),
        ("device", "rename", theirs, "mine-now"),
        ("keys", "send", theirs, str(pub)),
    ):
        r = cloud.cli(*args, profile="x", ok=False, FERMION_TOKEN=token)
        assert r.code == 1 and r.err.startswith("error:"), args
    assert cloud.snapshot(owner, [mine, theirs]) == before


# --- doctor: refused upload, interrupted after the write, dead bootloader --------------------


def test_doctor_whose_upload_is_refused_leaves_the_device_untouched(cloud: Cloud) -> None:
    t = team(cloud)
    owner = t["people"]["owner"]
    device = product_device(cloud, t, claim=owner)
    on_device = device_key(cloud, device)
    before = cloud.snapshot(owner, [device])
    r = cloud.cli("keys", "doctor", device, profile=t["people"]["view_only"], ok=False)
    assert r.code == 1 and "upload" in r.err and "not changed" in r.err
    assert device_key(cloud, device) == on_device
    assert cloud.snapshot(owner, [device]) == before


def test_doctor_that_cannot_see_the_device_online_rolls_back(cloud: Cloud) -> None:
    who = cloud.user(f"rb{next(_n)}@example.com")
    device = cloud.sim()
    pub, fp = cloud.saved_key(device)
    cloud.cli("keys", "send", device, str(pub), profile=who)
    # The device never comes online (no device server, or it was made unreachable): the doctor
    # must put the old key back on both sides.
    r = cloud.cli("keys", "doctor", device, "--wait", "--timeout", "2", profile=who, ok=False)
    assert r.code == 1
    assert "step 6" in r.err and "previous key is back on the device" in r.err
    assert "keys doctor" in r.err  # how to retry
    assert device_key(cloud, device) == fp
    assert cloud.snapshot(who, [device])[device][3] == fp
    actions = [a for _, a in audit_actions(cloud, who, device)]
    assert "key.restore" in actions


def test_dead_bootloader_is_reported_as_a_firmware_fault(cloud: Cloud) -> None:
    who = cloud.user(f"boot{next(_n)}@example.com")
    device = cloud.sim()
    pub, _ = cloud.saved_key(device)
    cloud.cli("keys", "send", device, str(pub), profile=who)
    before = cloud.snapshot(who, [device])
    cloud.cli("sim", "fault", device, "--bootloader")
    r = cloud.cli("keys", "doctor", device, profile=who, ok=False)
    assert r.code == 1 and "firmware fault" in r.err
    assert cloud.snapshot(who, [device]) == before


# --- bad input: the plan stops before changing anything -------------------------------------


def test_bad_input_stops_before_anything_changes(cloud: Cloud, tmp_path) -> None:
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    device = product_device(cloud, t, claim=owner)
    before = cloud.snapshot(owner, [device])
    cloud.cli("keys", "new", str(tmp_path / "ec"), "-a", "ec")
    cases = [
        (("keys", "repair", "f" * 24, "--key", str(tmp_path / "ec.pub.pem")), "not found"),
        (("keys", "repair", device, "--key", str(tmp_path / "ec.pub.pem")), "needs an RSA key"),
        (("keys", "repair", device), "presented no new key"),
        (("keys", "repair", "nothex"), "24 hex digits"),
    ]
    for args, message in cases:
        r = cloud.cli(*args, profile=dev, ok=False)
        assert r.code == 1 and message in r.err, (args, r.err)
    r = cloud.cli("keys", "repair", device, profile="nobody-logged-in", ok=False)
    assert "not logged in" in r.err
    outsider = cloud.user(f"out{t['n']}@example.com")
    r = cloud.cli(
        "keys", "repair", device, "--key", str(tmp_path / "ec.pub.pem"), profile=outsider, ok=False
    )
    assert r.code == 1
    assert cloud.snapshot(owner, [device]) == before


# --- the key the device presented: approve, reject, repair without a key file ---------------


def wait_candidate(cloud: Cloud, profile: str, device: str, timeout: float = 90) -> dict[str, Any]:

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cloud.api(profile, "GET", f"/v1/devices/{device}/keys/candidates")["candidates"]
        proven = [c for c in found if c["status"] == "pending" and c["possession_proven"]]
        if proven:
            return proven[0]
        time.sleep(0.5)
    raise AssertionError(f"device {device} presented no proven key within {timeout} s")


def _running_broken(cloud: Cloud, t: dict[str, Any], claim: str | None) -> tuple[str, str]:
    if not has_command("sim", "run") or not cloud.device_port:
        pytest.xfail(NO_DEVICE_SERVER)
    owner = t["people"]["owner"]
    device = product_device(cloud, t, claim=claim)
    cloud.run_devices(device)
    cloud.wait_online(owner, device)
    new_fp = brownout(cloud, device)
    candidate = wait_candidate(cloud, owner, device)
    assert candidate["fingerprint"] == new_fp
    return device, new_fp


@pytest.mark.parametrize("claim", ["owner", None, "customer"])
def test_keys_repair_uses_the_key_the_device_presented(cloud: Cloud, claim: str | None) -> None:
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    who = {"owner": owner, None: None, "customer": t["customers"][0]}[claim]
    device, new_fp = _running_broken(cloud, t, who)
    before = cloud.snapshot(owner, [device])

    out = cloud.cli("keys", "repair", device, "--json", profile=dev).json

    assert out["plan"][0] == "approve" and out["online"] is True
    after = cloud.snapshot(owner, [device])[device]
    assert after[3] == new_fp and after[:3] == before[device][:3]
    assert "key.candidate.approve" in [a for _, a in audit_actions(cloud, owner, device)]


def test_particle_compatible_repair_sends_the_key_the_device_presented(cloud: Cloud) -> None:
    """No --key: the cloud hands out the presented key (PEM), the seed's steps send it."""
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    customer = t["customers"][0]
    device, new_fp = _running_broken(cloud, t, customer)
    cid, secret = cloud.clients[str(t["product"])]

    out = cloud.cli(
        "keys",
        "repair",
        device,
        "--particle-compatible",
        "--json",
        profile=dev,
        FERMION_CLIENT_ID=cid,
        FERMION_CLIENT_SECRET=secret,
    ).json

    assert out["plan"][:4] == ["unclaim", "send", "customer_token", "claim_as_customer"]
    assert out["fingerprint"] == new_fp and out["online"] is True
    after = cloud.snapshot(owner, [device])[device]
    assert after[3] == new_fp and after[1] == customer
    assert "key.upload" in [a for _, a in audit_actions(cloud, owner, device)]


def test_keys_approve_and_reject(cloud: Cloud) -> None:
    t = team(cloud)
    owner, dev = t["people"]["owner"], t["people"]["developer"]
    approved, fp_a = _running_broken(cloud, t, owner)
    rejected, fp_r = _running_broken(cloud, t, None)

    cloud.cli("keys", "reject", rejected, profile=dev)
    cloud.cli("keys", "approve", approved, profile=dev)

    cloud.wait_online(owner, approved, fp_a)
    body = cloud.api(owner, "GET", f"/v1/devices/{rejected}")
    assert body["key_fingerprint"] != fp_r and not body["online"]
    statuses = [
        c["status"]
        for c in cloud.api(owner, "GET", f"/v1/devices/{rejected}/keys/candidates")["candidates"]
    ]
    assert "rejected" in statuses
    r = cloud.cli("keys", "approve", approved, profile=t["people"]["support"], ok=False)
    assert r.code == 1


def test_refused_doctor_leaves_a_running_device_online_with_its_old_key(cloud: Cloud) -> None:
    if not has_command("sim", "run") or not cloud.device_port:
        pytest.xfail(NO_DEVICE_SERVER)
    t = team(cloud)
    owner = t["people"]["owner"]
    device = product_device(cloud, t, claim=owner)
    cloud.run_devices(device)
    old = device_key(cloud, device)
    cloud.wait_online(owner, device, old)
    r = cloud.cli("keys", "doctor", device, profile=t["people"]["view_only"], ok=False)
    assert r.code == 1 and "not changed" in r.err
    assert device_key(cloud, device) == old
    assert cloud.wait_online(owner, device, old)["key_fingerprint"] == old
