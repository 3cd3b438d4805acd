"""Fleet-sized approval (issue #12 item 9): browned-out devices of a product reconnect with new
keys they prove they hold; one command approves them all, after a dry run that changes
nothing, and leaves a device that proved nothing alone."""

from __future__ import annotations

import time

import pytest

from scenarios.repair_harness import Cloud, has_command

pytestmark = pytest.mark.integration


def _proven(cloud: Cloud, profile: str, device: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cloud.api(profile, "GET", f"/v1/devices/{device}/keys/candidates")["candidates"]
        proven = [c for c in found if c["status"] == "pending" and c["possession_proven"]]
        if proven:
            return str(proven[0]["fingerprint"])
        time.sleep(0.5)
    raise AssertionError(f"device {device} presented no proven key within {timeout} s")


def test_product_device_approve_every_proven_key(cloud: Cloud) -> None:
    if not has_command("sim", "run") or not cloud.device_port:
        pytest.skip("needs the device server and `fermion sim run`")
    owner = cloud.user("fleetowner@example.com")
    dev = cloud.user("fleetdev@example.com")
    product = cloud.product("Fleet", "fleetowner@example.com")
    cloud.role(product, "fleetdev@example.com", "developer")
    p = str(product)
    devices = [cloud.sim() for _ in range(3)]
    for d in devices:
        pub, _ = cloud.saved_key(d)
        cloud.cli("keys", "send", d, str(pub), "--product_id", p, profile=owner)
    cloud.run_devices(*devices)
    for d in devices:
        cloud.wait_online(owner, d)
    broken, healthy = devices[:2], devices[2]
    presented = {}
    for d in broken:
        cloud.cli("sim", "fault", d, "--brownout")  # a new key the cloud does not hold
        cloud.cli("keys", "server", "--device", d, profile="at-the-device")
        presented[d] = _proven(cloud, owner, d)

    listed = cloud.cli(
        "product", "device", "list", p, "--health", "mismatch", "--json", profile=dev
    ).json
    assert {d["id"] for d in listed} == set(broken)

    plan = cloud.cli("product", "device", "approve", p, "--dry-run", "--json", profile=dev).json
    assert plan["dry_run"] is True
    assert {r["device_id"]: r["result"] for r in plan["devices"]} == {
        d: "would approve" for d in broken
    }
    assert {r["device_id"]: r["fingerprint"] for r in plan["devices"]} == presented
    for d in broken:  # the dry run changed nothing
        assert cloud.api(owner, "GET", f"/v1/devices/{d}")["key_health"] == "mismatch"

    out = cloud.cli("product", "device", "approve", p, profile=dev).out
    assert "approved 2, skipped 0, failed 0" in out, out
    for d in broken:
        assert d in out  # the summary table names each device
        cloud.wait_online(owner, d, presented[d])
    assert cloud.api(owner, "GET", f"/v1/devices/{healthy}")["key_health"] == "ok"
    actions = [
        e["action"]
        for e in cloud.cli("audit", "--product", p, "--json", profile=owner).json
        if e["device_id"] in broken
    ]
    assert actions.count("key.candidate.approve") == 2

    # Nothing left to approve: the second run says so and changes nothing.
    again = cloud.cli("product", "device", "approve", p, "--json", profile=dev).json
    assert again["devices"] == []

    # A Support member may not approve: the refusal is per device, the exit code says it.
    cloud.user("fleetsupport@example.com")
    cloud.role(product, "fleetsupport@example.com", "support")
    cloud.cli("sim", "fault", healthy, "--brownout")
    cloud.cli("keys", "server", "--device", healthy, profile="at-the-device")
    _proven(cloud, owner, healthy)
    r = cloud.cli("product", "device", "approve", p, profile="fleetsupport", ok=False)
    assert r.code == 1 and "failed 1" in r.out, (r.out, r.err)
