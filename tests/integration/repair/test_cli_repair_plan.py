"""`keys repair` and `keys doctor` run the cloud's plan (GET /v1/devices/:id/repair_plan), say
what it needs, and never report success for a device that did not come back online."""

from __future__ import annotations

import itertools
import stat
import subprocess
import time

import pytest

from scenarios.repair_harness import CLI, Cloud

pytestmark = pytest.mark.integration

_n = itertools.count()
LEFT_TO_DO = 3  # repair_cmd.LEFT_TO_DO_EXIT: the keys are right, the device is not back yet


def _own_device(cloud: Cloud) -> tuple[str, str, str]:
    """(profile, device, fingerprint in the cloud): a development device, key sent, not running."""
    who = cloud.user(f"plan{next(_n)}@example.com")
    device = cloud.sim()
    pub, fp = cloud.saved_key(device)
    cloud.cli("keys", "send", device, str(pub), profile=who)
    return who, device, fp


def _customer_device(cloud: Cloud) -> tuple[str, str, str, int]:
    """(owner profile, device, customer email, product): claimed by a two-legged customer."""
    n = next(_n)
    owner = cloud.user(f"planowner{n}@example.com")
    product = cloud.product(f"Plan {n}", f"planowner{n}@example.com")
    cloud.two_legged_client(product)
    customer = f"plancust{n}@example.com"
    cloud.cli("customer", "create", str(product), customer, profile=owner)
    device = cloud.sim()
    pub, _ = cloud.saved_key(device)
    cloud.cli("keys", "send", device, str(pub), "--product_id", str(product), profile=owner)
    token = cloud.customer_token(product, customer)
    cloud.cli("device", "claim", device, profile="x", FERMION_TOKEN=token)
    return owner, device, customer, product


def test_the_plan_comes_from_the_cloud_with_the_callers_real_role(cloud: Cloud) -> None:
    owner, device, _, product = _customer_device(cloud)
    pub, _ = cloud.saved_key(device)
    out = cloud.cli(
        "keys", "repair", device, "--key", str(pub), "--dry-run", "--json", profile=owner
    )
    body = out.json
    assert body["caller_role"] == "owner" and body["product_id"] == product
    assert body["owner"] == "customer"
    assert body["plan"] == ["atomic_repair", "verify", "wait_online"]
    assert body["done"] is False and body["missing"] == []
    text = cloud.cli("keys", "repair", device, "--key", str(pub), "--dry-run", profile=owner).out
    assert "one atomic call" in text and "needs:" in text and "device powered" in text


def test_particle_compatible_dry_run_says_it_needs_the_client_and_the_run_refuses_up_front(
    cloud: Cloud,
) -> None:
    owner, device, customer, _ = _customer_device(cloud)
    pub, _ = cloud.saved_key(device)
    args = ("keys", "repair", device, "--key", str(pub), "--particle-compatible")
    dry = cloud.cli(*args, "--dry-run", profile=owner)
    assert dry.code == 0
    assert "two-legged OAuth client" in dry.out and "(missing)" in dry.out
    assert "the real run will refuse" in dry.out
    before = cloud.snapshot(owner, [device])
    real = cloud.cli(*args, profile=owner, ok=False)
    assert real.code == 1 and "--client-id" in real.err and "nothing was changed" in real.err
    # Refused before the first step: still claimed by the customer, same key.
    assert cloud.snapshot(owner, [device]) == before
    assert before[device][1] == customer
    cid, secret = cloud.clients[str(cloud.snapshot(owner, [device])[device][2])]
    given = cloud.cli(
        *args,
        "--dry-run",
        "--json",
        profile=owner,
        FERMION_CLIENT_ID=cid,
        FERMION_CLIENT_SECRET=secret,
    ).json
    assert given["missing"] == [] and "two_legged_client" in given["needs"]


def test_repair_of_a_device_that_stays_offline_is_not_reported_done(cloud: Cloud) -> None:
    who, device, _ = _own_device(cloud)
    pub, fp = cloud.saved_key(device)
    r = cloud.cli(
        "keys", "repair", device, "--key", str(pub), "--timeout", "1", profile=who, ok=False
    )
    assert r.code == LEFT_TO_DO, r.err
    assert "did not come online within 1 s" in r.err and "left to do" in r.err
    assert f"fermion sim run {device}" in r.err
    assert cloud.snapshot(who, [device])[device][3] == fp  # the cloud side is done
    r = cloud.cli(
        "keys", "repair", device, "--key", str(pub), "--no-wait", "--json", profile=who, ok=False
    )
    assert r.code == LEFT_TO_DO
    assert r.json["done"] is True and r.json["online"] is False and r.json["left_to_do"]


def test_repair_of_a_running_device_waits_for_it(cloud: Cloud) -> None:
    who, device, fp = _own_device(cloud)
    cloud.run_devices(device)
    cloud.wait_online(who, device, fp)
    pub, _ = cloud.saved_key(device)
    out = cloud.cli("keys", "repair", device, "--key", str(pub), "--json", profile=who).json
    assert out["done"] is True and out["online"] is True and out["left_to_do"] is None


def test_doctor_keeps_private_keys_out_of_the_working_directory(cloud: Cloud, tmp_path) -> None:
    who, device, _ = _own_device(cloud)
    cwd = tmp_path / "project"
    cwd.mkdir()
    done = subprocess.run(
        [*CLI, "keys", "doctor", device, "--no-wait", "--json"],
        env=cloud.env(who),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Not waited for: the keys are right on both sides, the device is not seen back.
    assert done.returncode == LEFT_TO_DO, done.stderr
    assert "left to do" in done.stderr
    assert list(cwd.iterdir()) == []
    folder = cloud.home / "keys" / device
    assert done.stdout and str(folder) in done.stdout
    private = [p for p in folder.iterdir() if not p.name.endswith(".pub.pem")]
    assert private and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_doctor_refused_by_the_plan_changes_nothing(cloud: Cloud) -> None:
    _, device, _ = _own_device(cloud)
    stranger = cloud.user(f"stranger{next(_n)}@example.com")
    before = cloud.cli("sim", "inspect", device, "--json").json["device_key"]
    r = cloud.cli("keys", "doctor", device, profile=stranger, ok=False)
    assert r.code == 1 and "not found" in r.err
    assert cloud.cli("sim", "inspect", device, "--json").json["device_key"] == before


def _proven_candidate(cloud: Cloud, profile: str, device: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cloud.api(profile, "GET", f"/v1/devices/{device}/keys/candidates")["candidates"]
        if any(c["status"] == "pending" and c["possession_proven"] for c in found):
            return device
        time.sleep(0.5)
    raise AssertionError(f"device {device} presented no proven key within {timeout} s")


def test_repair_every_mismatched_device_of_a_product_in_one_command(cloud: Cloud) -> None:
    n = next(_n)
    owner = cloud.user(f"fleetowner{n}@example.com")
    product = cloud.product(f"Fleet {n}", f"fleetowner{n}@example.com")
    devices = [cloud.sim() for _ in range(3)]
    for d in devices:
        pub, _ = cloud.saved_key(d)
        cloud.cli("keys", "send", d, str(pub), "--product_id", str(product), profile=owner)
    cloud.run_devices(*devices)
    for d in devices:
        cloud.wait_online(owner, d)
    broken, healthy = devices[:2], devices[2]
    for d in broken:  # a brownout: a new key the cloud does not hold; the server key put back
        cloud.cli("sim", "fault", d, "--brownout")
        cloud.cli("keys", "server", "--device", d, profile="at-the-device")
    for d in broken:
        _proven_candidate(cloud, owner, d)
    healthy_before = cloud.snapshot(owner, [healthy])
    args = ("keys", "repair", "--product", str(product), "--health", "mismatch")

    dry = cloud.cli(*args, "--dry-run", "--json", profile=owner).json
    assert sorted(r["device"] for r in dry["devices"]) == sorted(broken)
    assert {r["outcome"] for r in dry["devices"]} == {"planned"}
    assert all(r["plan"][0] == "approve" for r in dry["devices"])
    shown = cloud.cli(*args, "--dry-run", profile=owner).out
    assert "dry run: nothing changed" in shown and all(d in shown for d in broken)

    done = cloud.cli(*args, "--json", profile=owner).json
    assert {r["device"]: r["outcome"] for r in done["devices"]} == dict.fromkeys(broken, "online")
    assert cloud.snapshot(owner, [healthy]) == healthy_before
    bad = cloud.cli(*args[:-1], "sideways", profile=owner, ok=False)
    assert bad.code == 1 and "--health" in bad.err
