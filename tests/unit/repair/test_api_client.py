"""The CLI's API client: request shapes (as particle-cli sends them), profiles, errors."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from fermion.cli.api_client import (
    ApiClient,
    ApiError,
    NotLoggedIn,
    Profile,
    active_profile_name,
    error_message,
    store_login,
    use_profile,
)
from fermion.errors import FermionError

DEV = "0123456789abcdef01234567"


class Recorder:
    def __init__(self, status: int = 200, body: object = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.body = {"ok": True} if body is None else body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)

    def form(self, i: int = -1) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[i].content.decode()).items()}


def client(rec: Recorder, token: str | None = "tok") -> ApiClient:
    return ApiClient(api_url="http://127.0.0.1:9", token=token, transport=httpx.MockTransport(rec))


def test_password_login_is_particle_clis_form() -> None:
    rec = Recorder(body={"access_token": "a", "expires_in": 60})
    client(rec, token=None).password_login("a@b.c", "pw")
    req = rec.requests[0]
    assert req.url.path == "/oauth/token"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in req.headers
    assert rec.form() == {
        "grant_type": "password",
        "username": "a@b.c",
        "password": "pw",
        "client_id": "particle-cli",
        "client_secret": "particle-cli",
        "expires_in": "7776000",
    }


def test_send_public_key_has_every_field_particle_cli_sends() -> None:
    rec = Recorder()
    client(rec).send_public_key(DEV.upper(), "PEM", "ecc", product_id=1234)
    req = rec.requests[0]
    assert req.url.path == f"/v1/provisioning/{DEV}"
    assert req.headers["authorization"] == "Bearer tok"
    form = rec.form()
    assert form["order"].startswith("manual_")
    del form["order"]
    assert form == {
        "deviceID": DEV,
        "publicKey": "PEM",
        "filename": "cli",
        "algorithm": "ecc",
        "product_id": "1234",
    }


def test_send_without_product_id_omits_it() -> None:
    rec = Recorder()
    client(rec).send_public_key(DEV, "PEM", "rsa")
    assert "product_id" not in rec.form()


def test_customer_token_uses_basic_auth_and_the_customer_scope() -> None:
    rec = Recorder(body={"access_token": "c"})
    client(rec, token=None).customer_token("cid", "secret", "c@example.com")
    req = rec.requests[0]
    assert req.headers["authorization"].startswith("Basic ")
    assert rec.form() == {"grant_type": "client_credentials", "scope": "customer=c@example.com"}


def test_claim_with_another_token() -> None:
    rec = Recorder()
    client(rec).claim(DEV, token="customer-token")
    assert rec.requests[0].headers["authorization"] == "Bearer customer-token"
    assert rec.form() == {"id": DEV, "request_transfer": "false"}


def test_revoke_sends_no_credentials() -> None:
    rec = Recorder()
    client(rec).revoke_token("zzz")
    assert "authorization" not in rec.requests[0].headers


def test_product_add_sends_a_file_of_ids() -> None:
    rec = Recorder(body={"updated": 2})
    client(rec).product_add_devices("widget", [DEV, DEV[::-1]])
    req = rec.requests[0]
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert f"{DEV}\n{DEV[::-1]}\n".encode() in req.content
    assert b'name="file"' in req.content


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"error": "invalid_grant", "error_description": "User credentials are invalid"},
            "User credentials are invalid",
        ),
        ({"ok": False, "error": "device not found"}, "device not found"),
        ({"errors": ["That belongs to someone else."]}, "That belongs to someone else."),
        ({"info": "I didn't recognize that device name or ID"}, "I didn't recognize"),
        ({}, "HTTP 418"),
    ],
)
def test_error_message_follows_particle_clis_order(body: object, message: str) -> None:
    assert message in error_message(body, 418)


def test_api_errors_are_one_line_fermion_errors() -> None:
    rec = Recorder(403, {"ok": False, "error": "needs the Developer role or above"})
    with pytest.raises(ApiError) as info:
        client(rec).unclaim(DEV)
    assert isinstance(info.value, FermionError)
    assert info.value.status == 403
    assert "\n" not in str(info.value)


def test_401_says_to_log_in() -> None:
    rec = Recorder(401, {"error": "invalid_token", "error_description": "token expired"})
    with pytest.raises(ApiError, match="fermion login"):
        client(rec).devices()


def test_unreachable_cloud_is_a_clear_error() -> None:
    api = ApiClient(api_url="http://127.0.0.1:1", token="t", timeout=2)
    with pytest.raises(FermionError, match=r"cannot reach the cloud at http://127\.0\.0\.1:1"):
        api.devices()


def test_profile_file_is_private_and_round_trips(fermion_home: Path) -> None:
    p = Profile.load("work")
    p.set("api-url", "http://127.0.0.1:8999/")
    store_login(p, "a@b.c", {"access_token": "secret-token", "expires_in": 3600})
    again = Profile.load("work")
    assert again.api_url == "http://127.0.0.1:8999"
    assert again.access_token == "secret-token"
    assert stat.S_IMODE(p.path.stat().st_mode) == 0o600
    assert p.path.is_relative_to(fermion_home)


def test_profile_use_switches_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert active_profile_name() == "default"
    use_profile("staging")
    assert active_profile_name() == "staging"
    monkeypatch.setenv("FERMION_PROFILE", "other")
    assert active_profile_name() == "other"


def test_env_url_and_token_override_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Profile.load("default")
    p.api_url, p.access_token = "http://127.0.0.1:1111", "from-file"
    p.save()
    monkeypatch.setenv("FERMION_API_URL", "http://127.0.0.1:2222")
    monkeypatch.setenv("FERMION_TOKEN", "from-env")
    api = ApiClient()
    assert api.api_url == "http://127.0.0.1:2222"
    assert api.require_token() == "from-env"


def test_missing_and_expired_logins_are_refused() -> None:
    with pytest.raises(NotLoggedIn, match="not logged in"):
        ApiClient(profile=Profile("x")).require_token()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    old = Profile("x", access_token="t", access_token_expires_at=past)
    with pytest.raises(NotLoggedIn, match="expired"):
        ApiClient(profile=old).require_token()


def test_bad_profile_names_and_urls_are_refused() -> None:
    with pytest.raises(FermionError, match="profile"):
        use_profile("../etc")
    with pytest.raises(FermionError, match="api-url"):
        Profile("x").set("api-url", "ftp://nope")
    with pytest.raises(FermionError, match="unknown setting"):
        Profile("x").set("colour", "blue")


def test_corrupt_profile_file_is_named(fermion_home: Path) -> None:
    p = Profile("bad")
    p.path.parent.mkdir(parents=True, exist_ok=True)
    p.path.write_text("{not json")
    with pytest.raises(FermionError, match=str(p.path)):
        Profile.load("bad")
