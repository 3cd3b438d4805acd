"""Console sessions and CSRF tokens, on top of the API's own access tokens.

A console session is an ordinary access token (minted by ``POST /oauth/token`` with the
password grant, client ``fermion-console``) kept in a Secure, HttpOnly, SameSite=Strict cookie:
revoking, expiring and auditing it is what the API already does for tokens. The CSRF token of a
session is an HMAC of a fixed label keyed by the session token, so it needs no storage, is
different for every session, and cannot be computed by a page that cannot read the cookie.
Before login there is no session, so the login form uses a double-submit cookie instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request, Response

from fermion.cloud.api.auth import Caller, lookup_token

SESSION_COOKIE = "fermion_console"
LOGIN_CSRF_COOKIE = "fermion_console_login"
CONSOLE_CLIENT = "fermion-console"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_CSRF_LABEL = b"fermion console csrf v1"


class LoginRequired(Exception):
    """No live session: the person is sent to the login page, which brings them back."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfRefused(Exception):
    """A form came without the session's CSRF token, or with another one."""


@dataclass(frozen=True)
class ConsoleSession:
    token: str
    caller: Caller

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)


def csrf_for(session_token: str) -> str:
    mac = hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def same_secret(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def safe_next(value: str | None) -> str:
    """Only a path inside the console: a login must never bounce the person off-site."""
    if not value:
        return "/console"
    parts = urlsplit(value)
    inside = parts.path == "/console" or parts.path.startswith("/console/")
    if parts.scheme or parts.netloc or not inside or "\\" in value or ".." in parts.path:
        return "/console"
    return value


def login_url(next_url: str) -> str:
    return "/console/login?next=" + quote(safe_next(next_url), safe="")


def here(request: Request) -> str:
    """The page a person was on: this GET's own path, or for a POST the page that sent it."""
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc == request.url.netloc:
            return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    return "/console"


async def current_session(request: Request) -> ConsoleSession:
    token = request.cookies.get(SESSION_COOKIE)
    caller = None
    if token:
        async with request.app.state.store.read() as session:
            caller = await lookup_token(session, token)
    if token is None or caller is None or not caller.is_user:
        raise LoginRequired(here(request))
    request.state.caller = caller
    request.state.console_session = ConsoleSession(token, caller)
    return request.state.console_session


def require_csrf(session: ConsoleSession, given: str | None) -> None:
    if not same_secret(session.csrf, given):
        raise CsrfRefused


# Browsers keep Secure cookies on http://127.0.0.1 and localhost too, so loopback works as is;
# anywhere else the console is meant to be served over HTTPS.


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        max_age=3600,
        path="/console/login",
        secure=True,
        httponly=True,
        samesite="strict",
    )
