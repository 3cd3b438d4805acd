"""Reading a request body that may be JSON, a form or multipart, as Particle's API accepts."""

from __future__ import annotations

import json
from typing import Any

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
        try:
            form = await request.form()
        except Exception:
            raise bad_request("body: is not a valid form") from None
        for key in form:
            values = form.getlist(key)
            fields[key] = values[0] if len(values) == 1 else values
    request.state.body_fields = fields
    return fields


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
