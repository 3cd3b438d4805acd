"""Reading a request body that may be JSON, a form or multipart, as Particle's API accepts,
and the one check of hostile input every route gets before it does any work.

Text that the store cannot hold (NUL, which PostgreSQL refuses in text; lone surrogates, which
no encoder writes), JSON nested deeper than any real request, whole numbers beyond the 32-bit
columns the store keeps ids in (PostgreSQL ``integer``; SQLite's 64-bit limit is wider), and
times that do not exist once turned to UTC are refused here, naming the field, instead of
failing in the driver as a 500.
"""

from __future__ import annotations

import json
import re
import types
import typing
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from fastapi import Request
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from fermion.cloud.api.errors import bad_request, not_found

# Deeper than any body the API takes (a list of ids, a flat object); far below the
# interpreter's recursion limit, which json.loads would otherwise hit as a RecursionError.
MAX_JSON_DEPTH = 32
# The store keeps ids, versions and counts in 32-bit integer columns (PostgreSQL ``integer``).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as text, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters"
    return "must be valid Unicode text (it holds a lone surrogate)"


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Every string (names too) in a parsed body storable, and the nesting bounded."""
    if depth > MAX_JSON_DEPTH:
        raise bad_request(f"body: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise bad_request(f"{where or 'body'}: {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            problem = text_problem(key)
            if problem:
                raise bad_request(f"body: a field name {problem}")
            _check_json(item, name, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where or 'body'}[{i}]", depth + 1)


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed, with NUL, lone surrogates and deep nesting refused as a 400."""
    try:
        parsed = json.loads(raw)
    except RecursionError:
        raise bad_request(f"body: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("body: is not valid JSON") from None
    _check_json(parsed, "")
    return parsed


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
            parsed = parse_json(raw)
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
            for text, what in ((key, "body: a field name"), (value, key)):
                problem = text_problem(text) if isinstance(text, str) else None
                if problem:
                    raise bad_request(f"{what}: {problem}")
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


def utc_time(name: str, value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC), or a 400 naming ``name`` when there it would fall
    outside the years 1 to 9999 (``9999-12-31T23:59:59-05:00``) and no driver could store it."""
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise bad_request(f"{name}: out of range (years 1 to 9999 in UTC)") from None


def parse_time(name: str, raw: str) -> datetime:
    """An ISO 8601 time with a zone, in UTC; a 400 naming ``name`` otherwise."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise bad_request(f"{name}: must be an ISO 8601 time with a zone")
    return utc_time(name, value)


_DATETIME = TypeAdapter(datetime)


def _declared(annotation: Any) -> set[type]:
    """The plain types an annotation admits (``int | None`` -> {int, NoneType})."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {a for a in typing.get_args(annotation) if isinstance(a, type)}
    return {annotation} if isinstance(annotation, type) else set()


def _whole_number(raw: str) -> int | None:
    try:
        return int(raw.strip())
    except ValueError:
        pass
    try:
        number = float(raw)
    except (ValueError, OverflowError):
        return None
    return int(number) if number.is_integer() else None


def _check_parameter(name: str, raw: str, declared: set[type], in_path: bool) -> None:
    problem = text_problem(raw)
    if problem:
        # A path names something; a name the store could not hold names nothing.
        raise (
            not_found(f"{name}: not found ({problem})")
            if in_path
            else bad_request(f"{name}: {problem}")
        )
    if int in declared and bool not in declared:
        number = _whole_number(raw)
        if number is not None and not INT_MIN <= number <= INT_MAX:
            if in_path:
                raise not_found(f"{name}: {raw.strip()} not found (no such id can exist)")
            raise bad_request(f"{name}: must be from {INT_MIN} to {INT_MAX}")
    if datetime in declared:
        try:
            value = _DATETIME.validate_python(raw)
        except ValidationError:
            return  # the route's own validation names what is wrong with it
        utc_time(name, value)


_Declared = dict[tuple[bool, str], set[type]]
# By id, keeping the dependant itself so that an id reused by another app's route (tests make
# many apps in one process) is recognised as not the same route.
_declared_by_route: dict[int, tuple[Any, _Declared]] = {}


def _declared_parameters(dependant: Any) -> _Declared:
    """(in path?, name) -> the types the route (and its dependencies) declare for it."""
    declared: _Declared = {}
    stack = [dependant]
    while stack:
        dep = stack.pop()
        stack.extend(dep.dependencies)
        for in_path, params in ((True, dep.path_params), (False, dep.query_params)):
            for field in params:
                key = (in_path, field.alias)
                declared[key] = declared.get(key, set()) | _declared(field.field_info.annotation)
    return declared


async def checked_parameters(request: Request) -> None:
    """Every route's path and query parameters checked for hostile input (see the module
    docstring) before the route does any work: an app-wide dependency, so a new route is
    covered without doing anything."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    declared: _Declared = {}
    if dependant is not None:
        entry = _declared_by_route.get(id(dependant))
        if entry is None or entry[0] is not dependant:
            entry = _declared_by_route[id(dependant)] = (dependant, _declared_parameters(dependant))
        declared = entry[1]
    for name, raw in request.path_params.items():
        if isinstance(raw, str):
            _check_parameter(name, raw, declared.get((True, name), set()), True)
    for name, raw in request.query_params.multi_items():
        problem = text_problem(name)
        if problem:
            raise bad_request(f"query: a parameter name {problem}")
        _check_parameter(name, raw, declared.get((False, name), set()), False)


JSON_OR_FORM = ("application/json", "application/x-www-form-urlencoded")


def body_doc(
    schema: dict[str, Any], *, multipart: bool = False, required: bool = False
) -> dict[str, Any]:
    """OpenAPI's ``requestBody`` for a route that reads ``body_fields``: the same fields as JSON
    or as a form (``multipart``: or a file upload), none of them required by the schema itself
    (the route names a missing field in its 400); ``required``: a body must be sent at all."""
    content: dict[str, Any] = {ctype: {"schema": schema} for ctype in JSON_OR_FORM}
    if multipart:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    return {"requestBody": {"required": required, "content": content}}
