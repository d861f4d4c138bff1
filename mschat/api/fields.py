"""Reading requests into the shapes: every bad value becomes a 400 naming the field."""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from mschat.api.errors import ApiError, bad_request
from mschat.api.shapes import PATTERN_WORDS

M = TypeVar("M", bound=BaseModel)

#: pydantic's error types, in words (``{label}`` is the field, other names its context)
MESSAGES = {
    "string_type": "{label} must be a string",
    "string_unicode": "{label} must be valid UTF-8 text",
    "int_type": "{label} must be an integer",
    "int_parsing": "{label} must be an integer",
    "int_from_float": "{label} must be an integer",
    "float_type": "{label} must be a number",
    "float_parsing": "{label} must be a number",
    "bool_type": "{label} must be true or false",
    "bool_parsing": "{label} must be true or false",
    "list_type": "{label} must be a list",
    "model_type": "{label} must be an object",
    "model_attributes_type": "{label} must be an object",
    "dict_type": "{label} must be an object",
    "string_too_short": "{label} must not be empty",
    "too_short": "{label} must not be empty",
    "string_too_long": "{label} must be at most {max_length} characters",
    "too_long": "{label} must have at most {max_length} items",
    "greater_than_equal": "{label} must be at least {ge}",
    "less_than_equal": "{label} must be at most {le}",
}
#: the longest unknown field name repeated in an error
MAX_ECHO = 100


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The body as JSON (413 when over the limit, 400 when it is not JSON)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large(exc.text) from None
    except (RequestPayloadError, HttpProcessingError):
        raise bad_request(
            "body",
            "the request body could not be read (a broken chunked or compressed encoding)",
            "invalid_body",
        ) from None
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


def validate(model: type[M], data: Any) -> M:
    """``data`` as ``model``, or a 400 naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _translate(model, exc.errors(include_url=False)[0]) from None


def path(request: web.Request, model: type[M]) -> M:
    """The URL path's parameters as ``model``."""
    return validate(model, dict(request.match_info))


def query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model`` (unknown parameters are ignored)."""
    return validate(model, {key: request.query[key] for key in request.query})


def headers(request: web.Request, model: type[M]) -> M:
    """The request headers ``model`` declares (by their names, any case)."""
    given = {}
    for name, field in model.model_fields.items():
        header = field.alias or name
        if header in request.headers:
            given[header] = request.headers[header]
    return validate(model, given)


def _label(loc: tuple[int | str, ...]) -> str:
    """``messages[0].content`` from pydantic's location tuple."""
    label = ""
    for part in loc:
        if isinstance(part, int):
            label += f"[{part}]"
        else:
            label += f".{part}" if label else str(part)
    return label or "body"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@functools.cache
def _properties(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True).get("properties", {})


def _bounds(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[Any, Any] | None:
    """The documented minimum and maximum of a top-level field, if it has both."""
    if len(loc) != 1:
        return None
    schema = _properties(model).get(str(loc[0]), {})
    for option in [schema, *schema.get("anyOf", [])]:
        if "minimum" in option and "maximum" in option:
            return option["minimum"], option["maximum"]
    return None


def _translate(model: type[BaseModel], error: Any) -> ApiError:
    """One of pydantic's errors as a 400 naming the field, in the API's words."""
    loc = tuple(error["loc"])
    label = _label(loc)
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing" or (kind.endswith("_type") and error.get("input", 0) is None):
        return bad_request(label, f"{label} is required", "missing_field")
    if kind == "extra_forbidden":
        name = str(loc[-1])[:MAX_ECHO]
        expected = ", ".join(f.alias or n for n, f in model.model_fields.items())
        return bad_request(
            name, f"unknown field {name!r}; expected one of {expected}", "unknown_field"
        )
    bounds = _bounds(model, loc) if kind in ("greater_than_equal", "less_than_equal") else None
    if bounds is not None:
        low, high = bounds
        if low == high:
            return bad_request(label, f"{label} must be {_number(low)}")
        return bad_request(label, f"{label} must be from {_number(low)} to {_number(high)}")
    if kind in ("literal_error", "enum"):
        expected = str(context.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return bad_request(label, f"{label} must be one of {expected}")
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern"))
        words = PATTERN_WORDS.get(pattern, f"must match {pattern}")
        return bad_request(label, f"{label} {words}")
    template = MESSAGES.get(kind)
    if template is None:
        # our own errors carry their words; any other is pydantic's, after the label
        template = error["msg"] if "{label}" in error["msg"] else "{label}: " + error["msg"]
    for key, value in context.items():
        template = template.replace("{" + key + "}", _number(value))
    return bad_request(label, template.replace("{label}", label))
