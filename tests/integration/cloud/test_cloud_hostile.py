"""Hostile input over real HTTP, on SQLite and PostgreSQL: a 4xx naming the field, nothing
stored, no traceback logged (issue #10, finding 10)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cloud_harness import Cloud, new_device_id

HUGE = str(2**63)  # beyond SQLite's 64-bit integers and PostgreSQL's int4 and int8
INT4 = str(2**31)  # beyond PostgreSQL's ``integer`` only


def _no_traceback(cloud: Cloud) -> None:
    log = cloud.server.log()
    assert "Traceback" not in log, log[-4000:]


def _json(value: Any) -> dict[str, Any]:
    """Keyword arguments for httpx sending ``value`` as JSON escaped to ASCII, so that a lone
    surrogate goes over the wire as ``\\ud800`` (httpx's own encoder cannot send one)."""
    return {"content": json.dumps(value), "headers": {"content-type": "application/json"}}


def _refused(reply: httpx.Response, status: int, field: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    message = body.get("error_description") or body.get("error")
    assert field in message, body


@pytest.fixture(scope="module")
def owner(cloud: Cloud) -> dict[str, Any]:
    email, token = cloud.user_token()
    product = cloud.product(email)
    device_id = new_device_id()
    assert cloud.provision(token, device_id).status_code == 200
    return {"email": email, "token": token, "product": product, "device": device_id}


def test_deep_json_before_any_token_is_a_400(cloud: Cloud) -> None:
    deep = "[" * 1000 + "]" * 1000
    for path in ("/v1/devices", "/v1/provisioning/x", "/v1/products/1/customers"):
        reply = httpx.post(
            f"{cloud.base_url}{path}",
            content='{"a": ' + deep + "}",
            headers={"content-type": "application/json"},
        )
        _refused(reply, 400, "nested deeper than 32")
    shallow_enough = '{"a": ' + "[" * 40 + "]" * 40 + "}"
    reply = httpx.post(
        f"{cloud.base_url}/v1/devices",
        content=shallow_enough,
        headers={"content-type": "application/json"},
    )
    _refused(reply, 400, "body: nested")
    _no_traceback(cloud)


def test_nul_in_the_unauthenticated_login(cloud: Cloud) -> None:
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        content=b"grant_type=password&username=a%00@x&password=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _refused(reply, 400, "username: must not contain NUL")
    assert reply.json()["error"] == "invalid_request"
    reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=("someone", "secret"),
        data={"grant_type": "client_credentials", "scope": "customer=\x00"},
    )
    _refused(reply, 400, "scope: must not contain NUL")
    _no_traceback(cloud)


def test_nul_and_surrogates_in_fields_queries_and_paths(
    cloud: Cloud, owner: dict[str, Any]
) -> None:
    device, product = owner["device"], owner["product"]
    with cloud.http(owner["token"]) as h:
        _refused(h.put(f"/v1/devices/{device}", data={"name": "a\x00b"}), 400, "name: must not")
        _refused(h.put(f"/v1/devices/{device}", **_json({"name": "a\ud800"})), 400, "name: must be")
        _refused(h.put(f"/v1/devices/{device}", json={"notes": ["\x00"]}), 400, "notes[0]")
        _refused(h.get("/v1/audit", params={"actor": "u\x00"}), 400, "actor: must not")
        _refused(h.get("/v1/devices", params={"x\x00": "1"}), 400, "parameter name")
        _refused(h.get(f"/v1/products/{product}/devices/ab%00cd"), 404, "device_id: not found")
        _refused(h.get("/v1/products/p%00q"), 404, "product: not found")
        _refused(
            h.post(f"/v1/products/{product}/customers", **_json({"email": "c\ud800@x.io"})),
            400,
            "email: must be valid Unicode",
        )
        name = h.get(f"/v1/devices/{device}").json()["name"]
    assert "\x00" not in (name or "")
    _no_traceback(cloud)


def test_times_out_of_range(cloud: Cloud, owner: dict[str, Any]) -> None:
    with cloud.http(owner["token"]) as h:
        for since in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-05:00"):
            _refused(h.get("/v1/audit", params={"since": since}), 400, "since: out of range")
            _refused(h.get("/v1/audit", params={"until": since}), 400, "until: out of range")
    # The console's audit page passes its filters to /v1/audit: it shows that refusal.
    cookie = {"Cookie": f"fermion_console={owner['token']}"}
    for since in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-05:00"):
        page = httpx.get(
            f"{cloud.base_url}/console/p/{owner['product']}/audit",
            params={"since": since},
            headers=cookie,
        )
        assert page.status_code == 400 and "since: out of range" in page.text, page.text[-2000:]
    for expires_at in ("9999-12-31T23:59:59-05:00", "2099-01-01T00:00:00Z"):
        reply = httpx.post(
            f"{cloud.base_url}/oauth/token",
            data={
                "grant_type": "password",
                "username": owner["email"],
                "password": "x",
                "expires_at": expires_at,
            },
        )
        _refused(reply, 400, "expires_at:")
    _no_traceback(cloud)


def test_ids_beyond_the_columns(cloud: Cloud, owner: dict[str, Any]) -> None:
    device = owner["device"]
    with cloud.http(owner["token"]) as h:
        for number in (HUGE, INT4, "-" + HUGE):
            _refused(h.post(f"/v1/devices/{device}/keys/{number}/restore"), 404, "version:")
            for verb in ("approve", "reject"):
                reply = h.post(f"/v1/devices/{device}/keys/candidates/{number}/{verb}")
                _refused(reply, 404, "candidate_id:")
            _refused(h.get("/v1/audit", params={"before_id": number}), 400, "before_id")
        # Still in range: the route's own answer, not the range check's.
        reply = h.post(f"/v1/devices/{device}/keys/2147483647/restore")
        assert reply.status_code == 404 and "version 2147483647" in reply.json()["error"]
    _no_traceback(cloud)
