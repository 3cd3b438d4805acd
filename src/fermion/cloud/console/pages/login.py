"""Logging in and out: the password grant of the API's own token endpoint, kept in a cookie."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from fermion.cloud.console import apicall
from fermion.cloud.console.session import (
    CONSOLE_CLIENT,
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_SECONDS,
    LoginRequired,
    clear_session_cookie,
    current_session,
    new_login_csrf,
    safe_next,
    same_secret,
    set_login_csrf_cookie,
    set_session_cookie,
)
from fermion.cloud.console.web import SessionDep, area_router, form_of, redirect, render, text

router = area_router()
MAX_EMAIL = 254


@router.get("/login")
async def login_form(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    try:
        await current_session(request)
        return redirect(next_url)
    except LoginRequired:
        pass
    return _login_page(request, next_url)


def _login_page(
    request: Request,
    next_url: str,
    error: str | None = None,
    status: int = 200,
    email: str = "",
) -> HTMLResponse:
    value = new_login_csrf()
    # ``login_error``, not ``error``: the base page shows ``error`` as a banner of its own, and
    # the form's error is shown once, next to the form. The email typed stays in its field.
    response = render(
        request,
        "login.html",
        status=status,
        next_url=next_url,
        login_csrf=value,
        login_error=error,
        email=email,
    )
    set_login_csrf_cookie(response, value)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    next_url = safe_next(text(form.get("next")))
    email = text(form.get("username"), MAX_EMAIL)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not same_secret(cookie, text(form.get(CSRF_FIELD))):
        # Refused all the same, but with a fresh form: the usual cause is a stale login page.
        error = "The login form had expired or was not sent from this page; please try again."
        return _login_page(request, next_url, error, status=403, email=email)
    reply = await apicall.call(
        request,
        "POST",
        "/oauth/token",
        token=None,
        data={
            "grant_type": "password",
            "username": email,
            "password": text(form.get("password")),
            "client_id": CONSOLE_CLIENT,
            "client_secret": CONSOLE_CLIENT,
            "expires_in": str(SESSION_SECONDS),
        },
    )
    if not reply.ok:
        error = "Email or password is wrong." if reply.status in (400, 401) else reply.message
        return _login_page(request, next_url, error, status=reply.status, email=email)
    response = redirect(next_url)
    set_session_cookie(response, reply.body["access_token"])
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    await form_of(request, session)
    await apicall.call(request, "DELETE", "/v1/access_tokens/current", token=session.token)
    response = redirect("/console/login")
    clear_session_cookie(response)
    return response
