"""Commands users look for (issue #12 item 10), run as a user runs them against a real cloud:
token list, product list, team list/invite/role/remove, client list/delete, audit with the API's
filters, device show; every listing with --json."""

from __future__ import annotations

import pytest

from scenarios.repair_harness import PASSWORD, Cloud

pytestmark = pytest.mark.integration


def test_token_list_marks_the_clis_own_token(cloud: Cloud) -> None:
    who = cloud.user("tok@example.com")
    secret = cloud.cli("token", "create", "-p", PASSWORD, "--json", profile=who).json[
        "access_token"
    ]
    listed = cloud.cli("token", "list", "--json", profile=who).json
    assert len(listed) == 2
    assert [t["current"] for t in listed].count(True) == 1
    shown = cloud.cli("token", "list", profile=who).out
    assert "this CLI's" in shown and "2 live token(s)" in shown
    for text in (shown, str(listed)):
        assert secret not in text and cloud.token_of(who) not in text


def test_product_list_and_team_invite_role_remove(cloud: Cloud) -> None:
    owner = cloud.user("towner@example.com")
    cloud.user("tmember@example.com", login=False)
    product = cloud.product("Team Widget", "towner@example.com")
    products = cloud.cli("product", "list", "--json", profile=owner).json
    assert [p["id"] for p in products] == [product]
    assert "Team Widget" in cloud.cli("product", "list", profile=owner).out

    p = str(product)
    cloud.cli("team", "invite", p, "tmember@example.com", "--role", "support", profile=owner)
    roles = {
        m["username"]: m["role"]["name"]
        for m in cloud.cli("team", "list", p, "--json", profile=owner).json
    }
    assert roles == {"towner@example.com": "Owner", "tmember@example.com": "Support"}
    out = cloud.cli("team", "role", p, "tmember@example.com", "developer", profile=owner).out
    assert "is now Developer" in out
    assert "Developer" in cloud.cli("team", "list", p, profile=owner).out
    cloud.cli("team", "remove", p, "tmember@example.com", profile=owner)
    members = cloud.cli("team", "list", p, "--json", profile=owner).json
    assert [m["username"] for m in members] == ["towner@example.com"]

    # The cloud's refusal, on one line, naming the field.
    r = cloud.cli("team", "invite", p, "nobody@example.com", profile=owner, ok=False)
    assert r.code == 1 and r.err.startswith("error: username:"), r.err
    assert r.err.strip().count("\n") == 0

    # What changed is in the audit trail, found with the API's filters.
    events = cloud.cli(
        "audit", "--product", p, "--action", "team.role", "--json", profile=owner
    ).json
    changes = [(e["detail"]["user"], e["detail"]["after"]) for e in events]
    assert ("tmember@example.com", "developer") in changes  # (the product's creation: owner)
    assert all(e["action"] == "team.role" for e in events)
    table = cloud.cli("audit", "--product", p, profile=owner).out
    assert "team.invite" in table and "team.remove" in table
    assert (
        len(cloud.cli("audit", "--product", p, "--limit", "1", "--json", profile=owner).json) == 1
    )
    r = cloud.cli("audit", "--since", "yesterday", profile=owner, ok=False)
    assert r.code == 1 and "since" in r.err, r.err


def test_client_list_and_delete(cloud: Cloud) -> None:
    owner = cloud.user("cowner@example.com")
    product = str(cloud.product("Client Widget", "cowner@example.com"))
    made = cloud.cli(
        "client", "create", "backend", "--product", product, "--type", "web",
        "--redirect-uri", "https://example.com/cb", "--json", profile=owner,
    ).json  # fmt: skip
    listed = cloud.cli("client", "list", "--product", product, "--json", profile=owner).json
    assert [c["id"] for c in listed] == [made["id"]]
    assert all("secret" not in c for c in listed)
    assert made["id"] in cloud.cli("client", "list", "--product", product, profile=owner).out
    cloud.cli("client", "delete", made["id"], "--product", product, profile=owner)
    assert cloud.cli("client", "list", "--product", product, "--json", profile=owner).json == []


def test_device_show(cloud: Cloud) -> None:
    who = cloud.user("show@example.com")
    device = cloud.sim()
    pub, fingerprint = cloud.saved_key(device)
    cloud.cli("keys", "send", device, str(pub), profile=who)
    shown = cloud.cli("device", "show", device.upper(), "--json", profile=who).json
    assert shown["id"] == device and shown["key_fingerprint"] == fingerprint
    table = cloud.cli("device", "show", device, profile=who).out
    assert fingerprint in table and "key_health" in table
    mine = cloud.cli("device", "list", "--health", "unknown", "--json", profile=who).json
    assert [d["id"] for d in mine] == [device]  # never handshaken
    assert cloud.cli("device", "list", "--health", "ok", "--json", profile=who).json == []
    r = cloud.cli("device", "show", "kitchen", profile=who, ok=False)
    assert r.code == 1 and "ID: 'kitchen' is not a device id" in r.err, r.err


def test_product_device_list_by_key_health(cloud: Cloud) -> None:
    owner = cloud.user("hlth@example.com")
    product = str(cloud.product("Health Widget", "hlth@example.com"))
    ids = [cloud.sim() for _ in range(2)]
    for d in ids:
        pub, _ = cloud.saved_key(d)
        cloud.cli("keys", "send", d, str(pub), "--product_id", product, profile=owner)
    unknown = cloud.cli(
        "product", "device", "list", product, "--health", "unknown", "--json", profile=owner
    ).json
    assert {d["id"] for d in unknown} == set(ids)  # never handshaken
    out = cloud.cli("product", "device", "list", product, "--health", "mismatch", profile=owner)
    assert "0 device(s) with key health mismatch" in out.out
    r = cloud.cli(
        "product", "device", "list", product, "--health", "broken", profile=owner, ok=False
    )
    assert r.code == 1 and "--health: 'broken' is not one of" in r.err, r.err
