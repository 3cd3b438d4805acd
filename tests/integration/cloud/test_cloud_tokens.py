"""/v1/access_tokens and /v1/user."""

from __future__ import annotations

import httpx
from cloud_harness import Cloud


def test_current_token_shape(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    with cloud.http(token) as h:
        body = h.get("/v1/access_tokens/current").json()
    assert set(body) >= {"expires_at", "client", "scopes", "orgs"}
    assert body["expires_at"].endswith("Z")


def test_delete_current_revokes_it(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    with cloud.http(token) as h:
        assert h.delete("/v1/access_tokens/current").json() == {"ok": True}
        reply = h.get("/v1/user")
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_token"


def test_delete_all_revokes_every_token_of_the_account(cloud: Cloud) -> None:
    email, first = cloud.user_token()
    second = cloud.token_for(email)
    _, stranger = cloud.user_token()
    with cloud.http(first) as h:
        assert h.delete("/v1/access_tokens").json() == {"ok": True}
    for token in (first, second):
        with cloud.http(token) as h:
            assert h.get("/v1/user").status_code == 401
    with cloud.http(stranger) as h:
        assert h.get("/v1/user").status_code == 200


def test_delete_one_token_without_other_credentials(cloud: Cloud) -> None:
    email, token = cloud.user_token()
    keep = cloud.token_for(email)
    reply = httpx.delete(f"{cloud.base_url}/v1/access_tokens/{token}")
    assert reply.json() == {"ok": True}
    with cloud.http(token) as h:
        assert h.get("/v1/user").status_code == 401
    with cloud.http(keep) as h:
        assert h.get("/v1/user").status_code == 200
    again = httpx.delete(f"{cloud.base_url}/v1/access_tokens/{token}")
    assert again.status_code == 404 and again.json()["ok"] is False


def test_user(cloud: Cloud) -> None:
    email, token = cloud.user_token()
    with cloud.http(token) as h:
        body = h.get("/v1/user").json()
    assert body["username"] == email
    assert body["mfa"] == {"enabled": False}


def test_token_in_query_and_in_body(cloud: Cloud) -> None:
    _, token = cloud.user_token()
    assert httpx.get(f"{cloud.base_url}/v1/user", params={"access_token": token}).status_code == 200
    reply = httpx.request(
        "DELETE", f"{cloud.base_url}/v1/access_tokens/current", data={"access_token": token}
    )
    assert reply.json() == {"ok": True}


def test_missing_and_garbage_tokens(cloud: Cloud) -> None:
    missing = httpx.get(f"{cloud.base_url}/v1/user")
    assert missing.status_code == 401 and missing.json()["ok"] is False
    for junk in ("0" * 40, "z" * 5000, "' OR 1=1 --"):
        garbage = httpx.get(
            f"{cloud.base_url}/v1/user", headers={"Authorization": f"Bearer {junk}"}
        )
        assert garbage.status_code == 401
        assert garbage.json()["error"] == "invalid_token"


def test_list_tokens_shows_the_accounts_live_tokens_never_their_secrets(cloud: Cloud) -> None:
    email, token = cloud.user_token()
    other = cloud.token_for(email)
    dead = cloud.token_for(email)
    _, stranger = cloud.user_token()
    assert httpx.delete(f"{cloud.base_url}/v1/access_tokens/{dead}").status_code == 200
    with cloud.http(token) as h:
        reply = h.get("/v1/access_tokens")
    assert reply.status_code == 200, reply.text
    listed = reply.json()
    assert len(listed) == 2  # the revoked one and the stranger's are not listed
    assert [t["current"] for t in listed].count(True) == 1
    for entry in listed:
        assert set(entry) == {"id", "client", "scopes", "created_at", "expires_at", "current"}
        assert entry["client"] == "particle" and entry["created_at"].endswith("Z")
    # Only hashes are stored: no secret of any token appears in the answer.
    for secret in (token, other, dead, stranger):
        assert secret not in reply.text
    assert httpx.get(f"{cloud.base_url}/v1/access_tokens").status_code == 401
