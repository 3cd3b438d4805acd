"""Errors in Particle's shapes.

``/oauth/*`` answers ``{"error": code, "error_description": text}``; ``/v1/*`` answers
``{"ok": false, "error": text, "error_description": text, ...}``. A 401 on ``/v1`` carries
``error: "invalid_token"`` because that is what particle-cli and particle-api-js test for before
clearing a stored token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fermion.cloud.credentials import Argon2Busy
from fermion.cloud.domain.permissions import PermissionDenied
from fermion.errors import FermionError, KeyFormatError, NotAllowed, NotFound

log = logging.getLogger("fermion.cloud.api")

_OAUTH_CODES = {
    400: "invalid_request",
    401: "invalid_client",
    403: "access_denied",
    404: "not_found",
    405: "invalid_request",
    413: "request_too_large",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An error reply. ``code`` is the OAuth ``error`` (or a /v1 machine code when given)."""

    def __init__(self, status: int, message: str, *, code: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra


def unauthorized(message: str = "The access token provided is invalid.") -> ApiError:
    return ApiError(401, message, code="invalid_token")


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def error_body(path: str, status: int, message: str, code: str | None, extra: dict[str, Any]):
    if path.startswith("/oauth"):
        body: dict[str, Any] = {
            "error": code or _OAUTH_CODES.get(status, "invalid_request"),
            "error_description": message,
        }
    elif code:
        body = {"ok": False, "error": code, "error_description": message}
    else:
        # particle-api-js builds its error message from `error_description` only, and the
        # particle-cli commands built on it print that message: without it a person sees just
        # "HTTP error 403 from <url>" and not why (tests/compat/FINDINGS.md, F1).
        body = {"ok": False, "error": message, "error_description": message}
    body.update(extra)
    return body


def error_response(
    request_path: str, status: int, message: str, code: str | None = None, **extra: Any
) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        error_body(request_path, status, message, code, extra), status_code=status, headers=headers
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "body"


# Errors a person must act on, by the status they are answered with (the most specific class
# wins: Starlette looks an exception's handler up along its class's MRO).
_STATUS_OF: dict[type[Exception], int] = {
    NotFound: 404,
    NotAllowed: 403,
    PermissionDenied: 403,
    KeyFormatError: 400,
    FermionError: 400,
}


def _answer_with(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def answer(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request.url.path, status, str(exc))

    return answer


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request.url.path, exc.status, exc.message, exc.code, **exc.extra)

    @app.exception_handler(Argon2Busy)
    async def _busy(request: Request, exc: Argon2Busy) -> JSONResponse:
        # 503, not 429: the caller did nothing wrong, the server has no room for another
        # password check right now (OAuth's own code for it is temporarily_unavailable).
        response = error_response(
            request.url.path,
            503,
            str(exc),
            "temporarily_unavailable",
            retry_after=exc.retry_after,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    for kind, status in _STATUS_OF.items():
        app.add_exception_handler(kind, _answer_with(status))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field_name(first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).lower()
        return error_response(request.url.path, 400, f"{field}: {msg}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        return error_response(request.url.path, exc.status_code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.url.path, request_id
        )
        return error_response(request.url.path, 500, "internal server error", request_id=request_id)
