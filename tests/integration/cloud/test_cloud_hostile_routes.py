"""Hostile input on every route of the app, over real HTTP, on SQLite and PostgreSQL: no 5xx.

The routes are read from the app's own router (console and operational routes included, which
the OpenAPI schema leaves out), so a new route is covered without touching this file. Each
gets NUL bytes, lone surrogates, JSON nested far too deep, numbers beyond every integer
column, and times that fall outside the years 1-9999 once in UTC, in its path, its query and
its body (JSON and form). Bounded: ``HYPOTHESIS_PROFILE=ci`` makes the examples fixed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cloud_harness import Cloud, new_device_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from fermion.cloud.app import create_app
from fermion.cloud.settings import Settings

EXAMPLES = 12  # per route and backend


def _routes() -> list[tuple[str, str]]:
    app = create_app(Settings(data_dir=Path("/nonexistent"), database_url="sqlite://"))
    found = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, Route) and route.methods:
                found.update((m, route.path) for m in route.methods - {"HEAD"})
            # An included router (FastAPI includes them lazily): its own routes.
            walk(getattr(getattr(route, "original_router", None), "routes", []))

    walk(app.routes)
    # Revoking the caller's own token would end the run's authentication, not find a 500
    # (the token routes get hostile input in test_cloud_hostile and test_cloud_tokens).
    found -= {("DELETE", "/v1/access_tokens/current"), ("DELETE", "/v1/access_tokens")}
    return sorted(found)


ROUTES = _routes()
PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

HOSTILE_TEXT = st.sampled_from(
    [
        "a\x00b",
        "\x00",
        "x\ud800y",
        "\udfff",
        str(2**63),
        str(2**31),
        "-" + str(2**63),
        "1e400",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+14:00",
        "9" * 400,
        "",
        " ",
        "..%2f..",
    ]
)
HOSTILE_JSON: st.SearchStrategy[Any] = st.one_of(
    HOSTILE_TEXT,
    st.sampled_from([2**63, -(2**63), 2**31, 1e308, True, None, [], {}]),
    st.builds(lambda n: json.loads("[" * n + "]" * n), st.integers(20, 200)),
)
FIELDS = st.sampled_from(
    [
        "name",
        "notes",
        "id",
        "ids",
        "email",
        "username",
        "password",
        "role",
        "scope",
        "grant_type",
        "expires_in",
        "expires_at",
        "product_id",
        "publicKey",
        "deviceID",
        "algorithm",
        "claim_user",
        "client_id",
        "since",
        "before_id",
        "\x00",
    ]
)


def _url_text(value: str) -> str:
    """``value`` percent-encoded as bytes; a lone surrogate becomes the invalid UTF-8 a
    client could send."""
    raw = value.encode("utf-8", "surrogatepass")
    return "".join(chr(b) if chr(b).isalnum() or chr(b) in "-._~" else f"%{b:02X}" for b in raw)


@st.composite
def requests(draw: st.DrawFn, path: str, real: dict[str, str]) -> dict[str, Any]:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in real and draw(st.booleans()):
            return real[name]
        return _url_text(draw(HOSTILE_TEXT))

    url = PARAM.sub(fill, path)
    query = draw(st.lists(st.tuples(FIELDS, HOSTILE_TEXT), max_size=3))
    if query:
        url += "?" + "&".join(f"{_url_text(k)}={_url_text(v)}" for k, v in query)
    kind = draw(st.sampled_from(["none", "json", "form", "deep"]))
    body: dict[str, Any] = {}
    if kind == "json":
        fields = draw(st.dictionaries(FIELDS, HOSTILE_JSON, max_size=4))
        body = {"content": json.dumps(fields), "headers": {"content-type": "application/json"}}
    elif kind == "form":
        pairs = draw(st.lists(st.tuples(FIELDS, HOSTILE_TEXT), min_size=1, max_size=4))
        content = "&".join(f"{_url_text(k)}={_url_text(v)}" for k, v in pairs)
        body = {
            "content": content,
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        }
    elif kind == "deep":
        body = {
            "content": '{"name": ' + "[" * 1000 + "]" * 1000 + "}",
            "headers": {"content-type": "application/json"},
        }
    return {"url": url, **body}


@pytest.fixture(scope="module")
def real(cloud: Cloud) -> dict[str, str]:
    """A real token, product and device, so that half the path parameters get past the
    "not found" into the handlers."""
    email, token = cloud.user_token()
    product = cloud.product(email)
    device = new_device_id()
    with cloud.http(token) as h:
        assert h.post(f"/v1/products/{product}/devices", json={"ids": [device]}).status_code == 200
    return {"token": token, "product": str(product), "device_id": device, "username": email}


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_hostile_input_never_makes_a_server_error(
    cloud: Cloud, real: dict[str, str], method: str, path: str
) -> None:
    with cloud.http(real["token"]) as h:
        # The console's session cookie is the token too: console pages get past the login.
        h.headers["Cookie"] = f"fermion_console={real['token']}"

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(request=requests(path, real))
        def one(request: dict[str, Any]) -> None:
            reply = h.request(method, **request)
            assert reply.status_code < 500, (method, request, reply.status_code, reply.text)

        one()
    log = cloud.server.log()
    assert "Traceback" not in log, log[-4000:]
