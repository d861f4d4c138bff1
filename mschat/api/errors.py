"""One JSON error shape for every endpoint, and the single MschatError → HTTP mapping."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from mschat.api.shapes import Error, ErrorDetail
from mschat.core.errors import DatabaseUnavailable, MschatError, ProviderError

#: OpenAI's error ``type`` for each status (clients such as the openai SDK read it)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    414: "invalid_request_error",
    415: "invalid_request_error",
    421: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
}
#: a failed answer was already retried against the provider (and its question is
#: stored): this header tells the openai SDK and its kin not to ask again
NO_RETRY = {"x-should-retry": "false"}
JSON_TYPE = "application/json; charset=utf-8"

#: provider failures that are the caller's doing map to client errors, not 502
PROVIDER_STATUS = {
    "model_not_found": 404,
    "context_length": 400,
    "bad_request": 400,
    "rate_limited": 429,
    "timeout": 504,
}


class ApiError(Exception):
    """An HTTP error with OpenAI's JSON error fields; ``param`` names the bad field."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = {**(NO_RETRY if status >= 500 else {}), **(headers or {})}

    def with_headers(self, headers: dict[str, str]) -> ApiError:
        """The same error carrying extra response headers."""
        self.headers = {**self.headers, **headers}
        return self

    def body(self) -> dict[str, Any]:
        """The error as ``{"error": {"message", "type", "param", "code"}}``."""
        return error_body(self.status, self.message, code=self.code, param=self.param)

    def response(self, extra: BaseModel | None = None) -> web.Response:
        """A JSON response carrying this error (plus the fields of ``extra``)."""
        body = self.body()
        if extra is not None:
            body.update(extra.model_dump(mode="json"))
        return json_response(body, status=self.status, headers=self.headers)


def error_type(status: int) -> str:
    """OpenAI's error type for an HTTP status."""
    if status >= 500:
        return "api_error"
    return ERROR_TYPES.get(status, "invalid_request_error")


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The JSON error object every endpoint uses (OpenAI's shape)."""
    detail = ErrorDetail(message=message, type=error_type(status), param=param, code=code)
    return Error(error=detail).model_dump()


def status_of(error: MschatError) -> int:
    """The HTTP status of a core error (one place; ``http_status`` on each class)."""
    if isinstance(error, ProviderError):
        return PROVIDER_STATUS.get(error.kind, error.http_status)
    return error.http_status


def from_mschat(error: MschatError, *, param: str | None = None) -> ApiError:
    """Translate a core error into an ApiError."""
    code = error.code
    if isinstance(error, ProviderError):
        code = error.kind
    headers = None
    if isinstance(error, DatabaseUnavailable):  # mschat reconnects by itself: ask again
        headers = {"Retry-After": str(error.retry_after), "x-should-retry": "true"}
    return ApiError(status_of(error), str(error), code=code, param=param, headers=headers)


def bad_request(param: str, message: str, code: str = "invalid_field") -> ApiError:
    """A 400 naming the offending field."""
    return ApiError(400, message, code=code, param=param)


def dump_json(data: BaseModel | dict[str, Any]) -> bytes:
    """JSON of a shape or a dict, non-ASCII text readable (escaped only when it is not
    valid Unicode, such as half an emoji from a model)."""
    if isinstance(data, BaseModel):
        try:
            return data.__pydantic_serializer__.to_json(data)
        except PydanticSerializationError:
            data = data.model_dump(mode="json")
    try:
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data).encode("ascii")


def json_response(
    data: BaseModel | dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response of a shape (or a plain dict)."""
    return web.Response(
        body=dump_json(data), status=status, headers={"Content-Type": JSON_TYPE, **(headers or {})}
    )
