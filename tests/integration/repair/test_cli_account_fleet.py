"""The CLI as an API client, against a real cloud process: login, profiles, tokens, fleet."""

from __future__ import annotations

import stat
import time

import pytest

from scenarios.repair_harness import PASSWORD, Cloud

pytestmark = pytest.mark.integration


def test_login_whoami_logout(cloud: Cloud) -> None:
    cloud.cli("admin", "create-user", "ann@example.com", "--password", PASSWORD)
    r = cloud.cli("login", "-u", "ann@example.com", "-p", PASSWORD, profile="ann")
    assert "logged in" in r.out
    profile_file = cloud.home / "profiles" / "ann.config.json"
    assert stat.S_IMODE(profile_file.stat().st_mode) == 0o600
    assert cloud.cli("whoami", "--json", profile="ann").json["username"] == "ann@example.com"
    token = cloud.token_of("ann")
    cloud.cli("logout", profile="ann")
    r = cloud.cli("whoami", profile="ann", ok=False)
    assert r.code == 1 and "not logged in" in r.err
    # The token was revoked in the cloud, not only forgotten.
    r = cloud.cli("whoami", profile="x", ok=False, FERMION_TOKEN=token)
    assert r.code == 1 and r.err.startswith("error:")


def test_wrong_password_is_one_line(cloud: Cloud) -> None:
    cloud.cli("admin", "create-user", "bob@example.com", "--password", PASSWORD)
    r = cloud.cli("login", "-u", "bob@example.com", "-p", "nope-nope-nope", ok=False)
    assert r.code == 1
    assert r.err.strip().count("\n") == 0
    assert "User credentials are invalid" in r.err


def test_profile_set_and_use(cloud: Cloud) -> None:
    cloud.cli("profile", "set", "api-url", "http://127.0.0.1:9/", profile="other")
    shown = cloud.cli("profile", "--json", profile="other", FERMION_API_URL="").json
    assert shown["api_url"] == "http://127.0.0.1:9"
    cloud.cli("profile", "use", "other")
    r = cloud.cli("whoami", ok=False, FERMION_API_URL="", FERMION_TOKEN="t")
    assert "cannot reach the cloud at http://127.0.0.1:9" in r.err


def test_token_create_and_revoke(cloud: Cloud) -> None:
    who = cloud.user("tia@example.com")
    made = cloud.cli("token", "create", "-p", PASSWORD, "--json", profile=who).json
    extra = made["access_token"]
    assert cloud.cli("whoami", "--json", profile="x", FERMION_TOKEN=extra).json["username"]
    r = cloud.cli("token", "revoke", cloud.token_of(who), profile=who, ok=False)
    assert "--force" in r.err
    cloud.cli("token", "revoke", extra, profile=who)
    assert cloud.cli("whoami", profile="x", ok=False, FERMION_TOKEN=extra).code == 1


def test_devices_claim_rename_list_unclaim(cloud: Cloud) -> None:
    who = cloud.user("dev@example.com")
    ids = [cloud.sim() for _ in range(3)]
    for d in ids:  # a device the cloud has never seen is created by uploading its key
        pub, _ = cloud.saved_key(d)
        cloud.cli("keys", "send", d, str(pub), profile=who)
    cloud.cli("device", "rename", ids[0], "kitchen", profile=who)
    listed = {d["id"]: d for d in cloud.cli("device", "list", "--json", profile=who).json}
    assert set(ids) <= set(listed) and listed[ids[0]]["name"] == "kitchen"
    table = cloud.cli("device", "list", profile=who).out
    assert ids[0] in table  # ids are never cut in the table
    cloud.cli("device", "unclaim", *ids, profile=who)
    assert cloud.cli("device", "list", "--json", profile=who).json == []
    # As at Particle, a device is claimed by id only while it is connected.
    r = cloud.cli("device", "claim", ids[0], profile=who, ok=False)
    assert r.code == 1 and "is not connected" in r.err, r.err
    if not cloud.device_port:
        return
    cloud.run_devices(*ids)
    deadline = time.monotonic() + 90
    while True:
        r = cloud.cli("device", "claim", *ids, profile=who, ok=False)
        if r.code == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.code == 0, r.err
    assert len(cloud.cli("device", "list", "--json", profile=who).json) == 3


def test_product_devices_and_customers(cloud: Cloud) -> None:
    owner = cloud.user("own@example.com")
    product = cloud.product("Widget", "own@example.com")
    ids = [cloud.sim() for _ in range(2)]
    for d in ids:
        pub, _ = cloud.saved_key(d)
        cloud.cli("keys", "send", d, str(pub), "--product_id", str(product), profile=owner)
    listed = cloud.cli("product", "device", "list", str(product), "--json", profile=owner).json
    assert {d["id"] for d in listed} == set(ids)
    cloud.cli("product", "device", "remove", str(product), ids[1], profile=owner)
    listed = cloud.cli("product", "device", "list", str(product), "--json", profile=owner).json
    assert [d["id"] for d in listed] == [ids[0]]
    cloud.cli("product", "device", "add", str(product), ids[1], profile=owner)
    cloud.cli("customer", "create", str(product), "c1@example.com", profile=owner)
    emails = [
        c["username"]
        for c in cloud.cli("customer", "list", str(product), "--json", profile=owner).json
    ]
    assert emails == ["c1@example.com"]
    cloud.cli("customer", "delete", str(product), "c1@example.com", profile=owner)
    assert cloud.cli("customer", "list", str(product), "--json", profile=owner).json == []


def test_client_create_shows_the_secret_once(cloud: Cloud) -> None:
    owner = cloud.user("cc@example.com")
    product = cloud.product("Gadget", "cc@example.com")
    made = cloud.cli(
        "client",
        "create",
        "backend",
        "--product",
        str(product),
        "--type",
        "two-legged",
        "--json",
        profile=owner,
    ).json
    assert made["secret"] and made["id"]


def test_api_errors_are_one_line_with_exit_1(cloud: Cloud) -> None:
    who = cloud.user("err@example.com")
    r = cloud.cli("device", "rename", "0" * 24, "x", profile=who, ok=False)
    assert r.code == 1 and r.err.startswith("error:") and r.err.strip().count("\n") == 0
    r = cloud.cli("device", "list", ok=False, profile="nobody")
    assert r.code == 1 and "does not exist" in r.err


def test_login_through_fermion_api_url_keeps_that_cloud(cloud: Cloud) -> None:
    """The harness logs in with FERMION_API_URL set; a later shell without it must still reach
    the cloud that issued the token, not the default address."""
    cloud.cli("admin", "create-user", "una@example.com", "--password", PASSWORD)
    cloud.cli("login", "-u", "una@example.com", "-p", PASSWORD, profile="una")
    assert cloud.cli("profile", "--json", profile="una", FERMION_API_URL="").json[
        "api_url"
    ] == cloud.url.rstrip("/")
    who = cloud.cli("whoami", "--json", profile="una", FERMION_API_URL="").json
    assert who["username"] == "una@example.com"


def test_a_profile_that_does_not_exist_is_named_not_created(cloud: Cloud) -> None:
    r = cloud.cli("whoami", profile="nosuch", ok=False)
    assert r.code == 1 and "profile 'nosuch' does not exist" in r.err, r.err
    cloud.cli("logout", profile="nosuch")
    assert not (cloud.home / "profiles" / "nosuch.config.json").exists()
    # Nor is it shown as if it were a profile: the known ones are named instead.
    cloud.user("known@example.com")
    r = cloud.cli("profile", profile="nosuch", ok=False)
    assert r.code == 1 and "profile 'nosuch' does not exist" in r.err, r.err
    assert "known" in r.err
    assert not (cloud.home / "profiles" / "nosuch.config.json").exists()
