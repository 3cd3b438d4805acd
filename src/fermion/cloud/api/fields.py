"""Reading a request body that may be JSON, a form or multipart, as Particle's API accepts."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from fastapi import Request
from starlette.datastructures import UploadFile

from fermion.cloud.api.errors import bad_request


async def body_fields(request: Request) -> dict[str, Any]:
    """The body as a dict (cached per request). Form values are strings; files stay uploads."""
    cached = getattr(request.state, "body_fields", None)
    if cached is not None:
        return cached
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, Any] = {}
    if ctype == "application/json" or ctype.endswith("+json"):
        raw = await request.body()
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise bad_request("body: is not valid JSON") from None
            if not isinstance(parsed, dict):
                raise bad_request("body: must be a JSON object")
            fields = parsed
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        items = _plain_form(await request.body()) if ctype[0] == "a" else None
        if items is None:
            try:
                form = await request.form()
            except Exception:
                raise bad_request("body: is not a valid form") from None
            items = form.multi_items()
        grouped: dict[str, list[Any]] = {}
        for key, value in items:
            grouped.setdefault(key, []).append(value)
        for key, values in grouped.items():
            fields[key] = values[0] if len(values) == 1 else values
    request.state.body_fields = fields
    return fields


_MAX_FORM_FIELDS = 1000  # starlette's default limit


def _plain_form(raw: bytes) -> list[tuple[str, str]] | None:
    """A urlencoded body of ``name=value`` pairs, decoded exactly as starlette's form parser
    decodes them (latin-1, then ``unquote_plus``), without its per-byte callbacks; None for
    anything else (empty pieces, a name without ``=``, too many fields), which the parser
    itself then reads, with its own errors."""
    if not raw:
        return []
    pieces = raw.split(b"&")
    if len(pieces) > _MAX_FORM_FIELDS:
        return None
    items = []
    for piece in pieces:
        name, equals, value = piece.partition(b"=")
        if not name or not equals:
            return None
        items.append((unquote_plus(name.decode("latin-1")), unquote_plus(value.decode("latin-1"))))
    return items


def text_field(
    fields: dict[str, Any], name: str, *, required: bool = False, max_len: int = 10_000
) -> str | None:
    """A string field, with an error naming it when missing, not text, or too long."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise bad_request(f"{name}: is required")
        return None
    if isinstance(value, UploadFile) or not isinstance(value, str | int | float):
        raise bad_request(f"{name}: must be a string")
    text = str(value)
    if len(text) > max_len:
        raise bad_request(f"{name}: longer than {max_len} characters")
    return text


def bool_field(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name)
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}
