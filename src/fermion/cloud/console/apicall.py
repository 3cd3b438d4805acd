"""The console's way to change anything: the REST API's own routes, called in-process.

Every form the console shows turns into the REST call the CLI would make, with the session's
access token, through the same ASGI app. So a change made from the console goes through the
same permission check, the same validation and the same audit event as one made with curl, and
the console holds no rule of its own. Replies come back as Particle's JSON error shapes, whose
message the console shows next to the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

from fermion.cloud.console.session import ConsoleSession, LoginRequired

_BASE = "http://console.internal"


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """The error text of a Particle-shaped error body."""
        body = self.body if isinstance(self.body, dict) else {}
        for key in ("error_description", "error", "info", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return str(errors[0])
        return f"request failed (HTTP {self.status})"


async def call(
    request: Request,
    method: str,
    path: str,
    *,
    token: str | None,
    data: dict[str, Any] | None = None,
    files: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> ApiReply:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # The API's login limiter counts by the client address: pass the real one through.
    client = (request.client.host, request.client.port) if request.client else ("unknown", 0)
    transport = httpx.ASGITransport(app=request.app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url=_BASE) as http:
        response = await http.request(
            method, path, headers=headers, data=data, files=files, params=params
        )
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    return ApiReply(response.status_code, body)


async def form_call(
    request: Request,
    session: ConsoleSession,
    method: str,
    path: str,
    *,
    back: str,
    data: dict[str, Any] | None = None,
) -> ApiReply:
    """A form's call, as the session: a session that ended since the page was drawn (401) sends
    the person to log in, and then ``back`` to the page the form was on."""
    reply = await call(request, method, path, token=session.token, data=data)
    if reply.status == 401:
        raise LoginRequired(back)
    return reply
