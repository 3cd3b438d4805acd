"""The console's pure parts: where a login may send a person, CSRF tokens, query parsing."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from fermion.cloud.api.views import fp
from fermion.cloud.console.fleet import PER_PAGE, SORTS, FleetQuery, Health, _host
from fermion.cloud.console.session import csrf_for, login_url, safe_next, same_secret
from fermion.cloud.console.web import audit_change
from fermion.cloud.console.web import outcome_detail as _outcome_detail


def test_next_stays_inside_the_console() -> None:
    assert safe_next("/console/devices/abc?x=1") == "/console/devices/abc?x=1"
    for hostile in (
        "https://evil.example/console",
        "//evil.example/console",
        "/\\evil.example",
        "/consolex/../etc",
        "javascript:alert(1)",
        "/v1/devices",
        "",
        None,
    ):
        assert safe_next(hostile) == "/console", hostile


@given(st.text(max_size=200))
def test_next_is_never_off_site(value: str) -> None:
    result = safe_next(value)
    parts = urlsplit(result)
    assert not parts.scheme and not parts.netloc and ".." not in parts.path
    assert parts.path == "/console" or parts.path.startswith("/console/")


def test_login_url_quotes_the_page() -> None:
    assert login_url("/console/devices/1?a=b&c=d") == (
        "/console/login?next=%2Fconsole%2Fdevices%2F1%3Fa%3Db%26c%3Dd"
    )


def test_csrf_token_is_per_session_and_checked_in_constant_time() -> None:
    a, b = csrf_for("token-a"), csrf_for("token-b")
    assert a != b and a == csrf_for("token-a")
    assert len(a) == 43 and "=" not in a
    assert same_secret(a, a)
    assert not same_secret(a, b)
    assert not same_secret(a, None)
    assert not same_secret(a, "")


def test_fleet_query_defaults_and_values() -> None:
    q = FleetQuery.parse({})
    assert (q.health, q.online, q.q, q.sort, q.desc, q.page) == (
        None,
        None,
        "",
        "last_handshake",
        True,
        1,
    )
    q = FleetQuery.parse(
        {
            "health": "mismatch_proven",
            "online": "offline",
            "q": " kit ",
            "sort": "name",
            "page": "3",
        }
    )
    assert q.health is Health.PROVEN and q.online is False and q.q == "kit"
    assert q.sort == "name" and not q.desc and q.page == 3
    assert q.args(page=None) == {
        "health": "mismatch_proven",
        "online": "offline",
        "q": "kit",
        "sort": "name",
        "dir": "asc",
    }
    assert PER_PAGE == 25


@given(
    st.dictionaries(st.sampled_from(["health", "online", "q", "sort", "dir", "page"]), st.text())
)
@example({"page": "²"})  # str.isdigit() is true, int() refuses it
@example({"page": "٣"})
def test_fleet_query_takes_anything_a_person_types(params: dict[str, str]) -> None:
    q = FleetQuery.parse(params)
    assert q.sort in SORTS and q.page >= 1 and len(q.q) <= 100


def test_host_of_an_address() -> None:
    assert _host("127.0.0.1:5683") == "127.0.0.1"
    assert _host("[::1]:5683") == "::1"
    assert _host("::1") == "::1"
    assert _host("10.0.0.1") == "10.0.0.1"


def test_outcome_detail_reads_the_device_servers_note() -> None:
    assert _outcome_detail('{"count": 3, "reason": "possession proven"}') == (
        "possession proven (×3)"
    )
    assert _outcome_detail('{"count": 1, "reason": "connected"}') == "connected"
    assert _outcome_detail("not json") == "not json"
    assert _outcome_detail(None) == ""


def test_outcome_detail_writes_known_keys_as_the_page_does() -> None:
    known = hashlib.sha256(b"device key").hexdigest()
    other = "0123456789abcdef"  # a prefix of no key the page knows: left as it is
    note = f'{{"count": 2, "reason": "presented key {known[:16]}, expected {other}"}}'
    assert _outcome_detail(note, [known, None]) == (
        f"presented key {fp(known)}, expected {other} (×2)"
    )
    assert fp(known) is not None and fp(known).startswith("SHA256:")
    assert _outcome_detail(note) == f"presented key {known[:16]}, expected {other} (×2)"


def test_audit_change_says_what_changed() -> None:
    role = {
        "action": "team.role",
        "detail": {"user": "a@example.com", "before": "view_only", "after": "developer"},
    }
    assert audit_change(role) == "a@example.com: View-only → Developer"
    created = {"action": "customer.create", "detail": {"email": "c@x.com", "no_password": True}}
    assert audit_change(created) == "customer c@x.com (two-legged, no password)"
    other = {"action": "device.rename", "detail": {"reason": "tidy", "old_name": "a" * 100}}
    assert audit_change(other) == "tidy · old name: " + "a" * 79 + "…"
    assert audit_change({"action": "x", "detail": None}) == ""
