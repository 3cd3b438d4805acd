"""What every console page shares: the templates, the response headers, the routes that turn
errors into pages, and reading a form once its CSRF token matches.

Each area of the console (``pages/*``) builds its routes from these, so a header, a filter or
the way a refusal is shown is decided here once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fermion.cloud.api.errors import ApiError
from fermion.cloud.api.views import fp
from fermion.cloud.console.fleet import LABELS, Health
from fermion.cloud.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    ConsoleSession,
    CsrfRefused,
    LoginRequired,
    current_session,
    login_url,
    require_csrf,
)
from fermion.cloud.domain.permissions import Action, Actor, PermissionDenied, Role, allowed

HERE = Path(__file__).parent

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


# The device server's reasons name keys by the first 16 hex digits of their SHA-256.
_HEX_PREFIX = re.compile(r"\b[0-9a-f]{16}\b")


def outcome_detail(text: str | None, fingerprints: Iterable[str | None] = ()) -> str:
    """The device server keeps a small JSON note per outcome: its reason and a count.

    A key named in the reason by its hex prefix is written as the page writes fingerprints
    (``SHA256:base64``, the CLI's and the API's form) when it is one of ``fingerprints``
    (full hex digests the page knows: the outcome's own, the device's keys), so the two can be
    matched by eye; an unknown prefix is left as it is.
    """
    if not text:
        return ""
    try:
        note = json.loads(text)
    except ValueError:
        note = None
    if isinstance(note, dict):
        reason = str(note.get("reason", ""))
        count = note.get("count")
        shown = f"{reason} (×{count})" if isinstance(count, int) and count > 1 else reason
    else:
        shown = text
    known = [f for f in fingerprints if f]

    def full(match: re.Match[str]) -> str:
        prefix = match.group(0)
        found = next((f for f in known if f.startswith(prefix)), None)
        return (fp(found) or prefix) if found else prefix

    return _HEX_PREFIX.sub(full, shown) if known else shown


def _role_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "not on the team"
    try:
        return Role(value).label
    except ValueError:
        return value


def _scalar(value: Any) -> str | None:
    """A detail value short enough for a table cell (lists by their length)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value:
        return value if len(value) <= 80 else value[:79] + "…"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value[:5]) + (" …" if len(value) > 5 else "")
    return None


def audit_change(event: dict[str, Any]) -> str:
    """What an audit event changed, in a line: a role's old and new name, which customer, or
    the event's own detail (``record``'s ``detail``) as ``name: value`` pairs."""
    detail = event.get("detail")
    if not isinstance(detail, dict) or not detail:
        return ""
    action = event.get("action")
    if action == "team.role":
        before, after = _role_name(detail.get("before")), _role_name(detail.get("after"))
        return f"{detail.get('user', '?')}: {before} → {after}"
    if action == "customer.create":
        how = " (two-legged, no password)" if detail.get("no_password") else ""
        return f"customer {detail.get('email', '?')}{how}"
    pairs = []
    for name, value in detail.items():
        shown = _scalar(value)
        if shown is not None and name != "reason":
            pairs.append(f"{name.replace('_', ' ')}: {shown}")
    reason = detail.get("reason")
    if isinstance(reason, str) and reason:
        pairs.insert(0, reason)
    return " · ".join(pairs)


templates.filters["when"] = when
templates.filters["audit_change"] = audit_change
templates.filters["fingerprint"] = fp
templates.filters["outcome_detail"] = outcome_detail
templates.globals["LABELS"] = LABELS
templates.globals["Health"] = Health
templates.globals["Action"] = Action
templates.globals["CSRF_FIELD"] = CSRF_FIELD

# Shown after a change (post/redirect/get); the query string carries a key, never free text.
NOTICES = {
    "approved": "Key approved. The device is let in the next time it connects.",
    "rejected": "Key rejected. The device stays refused until its key is repaired.",
    "unclaimed": "Device unclaimed.",
    "removed": "Device removed from the product.",
    "renamed": "Device renamed.",
    "repaired": "Key replaced; the claim is kept. The device is let in when it reconnects.",
    "invited": "Team member invited.",
    "role": "Role changed.",
    "member_removed": "Team member removed.",
    "customer_created": "Customer created.",
    "customer_deleted": "Customer deleted.",
    "client_deleted": "OAuth client deleted.",
}

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

# The actions whose links a product's pages show in their navigation.
PRODUCT_NAV = (
    Action.TEAM_VIEW,
    Action.CUSTOMER_VIEW,
    Action.CLIENT_VIEW,
    Action.AUDIT_VIEW,
    Action.TEAM_MANAGE,
    Action.CUSTOMER_MANAGE,
    Action.CLIENT_MANAGE,
)


def permitted(
    actor: Actor | None, actions: Iterable[Action], also: Actor | None = None
) -> set[Action]:
    """Which of ``actions`` to offer: the permission table's answer, as the API gives it on
    submit (the console hides what would be refused; it decides nothing)."""
    return {action for action in actions if allowed(actor, action, also=also)}


class ConsoleRoute(APIRoute):
    """Turns the errors a page can meet into pages, not the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                if request.headers.get("accept", "").startswith("application/json"):
                    return JSONResponse({"ok": False, "error": "login required"}, 401)
                return RedirectResponse(login_url(exc.next_url), status_code=303)
            except CsrfRefused:
                return error_page(
                    request,
                    403,
                    "The form's security token is missing or out of date. Go back, reload "
                    "the page and try again.",
                )
            except PermissionDenied as exc:
                return error_page(request, 403, str(exc))
            except ApiError as exc:
                return error_page(request, exc.status, exc.message)

        return route


def area_router() -> APIRouter:
    """The router of one console area: under /console, errors as pages, not in the API's docs."""
    return APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


SessionDep = Annotated[ConsoleSession, Depends(current_session)]


def render(
    request: Request,
    name: str,
    status: int = 200,
    session: ConsoleSession | None = None,
    **ctx: Any,
) -> HTMLResponse:
    ctx.setdefault("notice", NOTICES.get(request.query_params.get("done", "")))
    html = templates.get_template(name).render(
        request=request,
        session=session,
        me=session.caller.email if session else None,
        csrf=session.csrf if session else None,
        **ctx,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    # Logged in or not, as far as this request got: the header shows who, when it is known.
    session = getattr(request.state, "console_session", None)
    return render(
        request, "error.html", status=status, session=session, message=message, code=status
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def form_of(request: Request, session: ConsoleSession) -> dict[str, Any]:
    """The submitted form, once its CSRF token matches the session's."""
    form = await request.form()
    require_csrf(session, text(form.get(CSRF_FIELD)) or request.headers.get(CSRF_HEADER))
    return {key: form.get(key) for key in form}


def text(value: Any, limit: int = 1000) -> str:
    """A form field as text, at most ``limit`` characters (a file or nothing: empty)."""
    return value[:limit] if isinstance(value, str) else ""
