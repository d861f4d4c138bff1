"""Reading request bodies and fields: every bad value becomes a 400 naming the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mschat.api.errors import ApiError, bad_request

#: SQLite integers are signed 64-bit; larger ids can only be "not found"
MAX_ID = 2**63 - 1
MAX_NAME = 256
MAX_TEXT = 1_000_000


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object (413 when over the limit, 400 when not a JSON object)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large(exc.text) from None
    if not raw.strip():
        if required:
            raise bad_request("body", "the request body must be a JSON object", "invalid_json")
        return {}
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise bad_request(
            "body", f"the request body is not valid JSON: {exc}", "invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise bad_request("body", "the request body must be a JSON object", "invalid_json")
    return data


def too_large(detail: str | None = None) -> ApiError:
    """The 413 error for a body over ``api.max_body``."""
    return ApiError(
        413, detail or "the request body is too large", code="body_too_large", param="body"
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _check_text(name: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(name, f"{name} must be valid UTF-8 text") from None
    if "\x00" in value:
        raise bad_request(name, f"{name} must not contain NUL characters")
    return value


def _given(data: Mapping[str, Any], name: str, required: bool, label: str) -> Any:
    """The field's value; None when absent, unless it is required."""
    value = data.get(name)
    if value is None and required:
        raise bad_request(label, f"{label} is required", "missing_field")
    return value


def text(
    data: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    blank: bool = True,
    max_len: int = MAX_TEXT,
    label: str | None = None,
) -> str | None:
    """A string field; ``blank=False`` refuses empty or whitespace-only text."""
    label = label or name
    value = _given(data, name, required, label)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(label, f"{label} must be a string")
    _check_text(label, value)
    if not blank and not value.strip():
        raise bad_request(label, f"{label} must not be empty")
    if len(value) > max_len:
        raise bad_request(label, f"{label} must be at most {max_len} characters")
    return value


def user_name(data: Mapping[str, Any], name: str = "user", *, default: str | None = None) -> str:
    """An API user's name (1 to 256 characters, surrounding spaces removed)."""
    value = text(data, name, required=default is None, blank=False, max_len=MAX_NAME)
    if value is None:
        assert default is not None
        return default
    return value.strip()


def integer(
    data: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    minimum: int = 0,
    maximum: int = MAX_ID,
    digits_ok: bool = False,
    label: str | None = None,
) -> int | None:
    """An integer field within bounds; ``digits_ok`` also takes a digit string."""
    label = label or name
    value = _given(data, name, required, label)
    if value is None:
        return None
    if isinstance(value, str) and digits_ok and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(label, f"{label} must be an integer")
    if not minimum <= value <= maximum:
        raise bad_request(label, f"{label} must be from {minimum} to {maximum}")
    return value


def number(data: Mapping[str, Any], name: str, *, minimum: float, maximum: float) -> float | None:
    """A number field within bounds."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(name, f"{name} must be a number")
    if not minimum <= value <= maximum:
        raise bad_request(name, f"{name} must be from {minimum:g} to {maximum:g}")
    return float(value)


def boolean(data: Mapping[str, Any], name: str) -> bool | None:
    """A JSON boolean field."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_request(name, f"{name} must be true or false")
    return value


def query_int(
    request: web.Request,
    name: str,
    default: int | None,
    *,
    minimum: int = 0,
    maximum: int = MAX_ID,
) -> int | None:
    """An integer query parameter (``?limit=20``) within bounds."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return integer({name: raw}, name, minimum=minimum, maximum=maximum, digits_ok=True)


def query_bool(request: web.Request, name: str) -> bool | None:
    """A boolean query parameter: true/false, 1/0, yes/no."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise bad_request(name, f"{name} must be true or false")


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric id from the URL path."""
    value = integer(request.match_info, name, required=True, minimum=1, digits_ok=True)
    assert value is not None
    return value


def path_user(request: web.Request) -> str:
    """The user name from the URL path."""
    return user_name(request.match_info, "user")
