"""Middlewares: JSON errors for everything, bearer-token auth and the body-size limit."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from mschat.api.context import IN_FLIGHT, settings_of
from mschat.api.errors import ApiError, from_mschat
from mschat.api.fields import too_large
from mschat.core.errors import MschatError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: routes anyone may call, even when a token is configured (load balancers probe them)
PUBLIC_PATHS = frozenset({"/healthz"})

log = logging.getLogger("mschat.api")


@web.middleware
async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Remember the task serving each request so shutdown can wait for it to settle."""
    tasks = request.app[IN_FLIGHT]
    task = asyncio.current_task()
    if task is not None:
        tasks.add(task)
    try:
        return await handler(request)
    finally:
        tasks.discard(task)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn ApiError, MschatError and aiohttp's HTTP errors into the JSON error shape."""
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except MschatError as error:
        return from_mschat(error).response()
    except web.HTTPRequestEntityTooLarge as exc:
        return too_large(exc.text).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 404 else f"no route {request.method} {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return ApiError(
            exc.status, message, code=exc.reason.lower().replace(" ", "_"), headers=headers
        ).response()
    except Exception:
        # a bug must still answer in the documented shape; the traceback goes to the log
        log.exception("unhandled error in %s %s", request.method, request.path)
        return ApiError(500, "internal server error", code="internal_error").response()


CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-Mschat-Session"


def _allowed_origin(request: web.Request) -> str | None:
    """The value of Access-Control-Allow-Origin for this request, if CORS allows it."""
    origins = settings_of(request).cors_origins
    origin = request.headers.get("Origin")
    if not origins or origin is None:
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer the preflights of the configured browser origins (they carry no token)."""
    allowed = _allowed_origin(request)
    if (
        allowed is not None
        and request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
    ):
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: CORS headers on every answer, streams included."""
    allowed = _allowed_origin(request)
    if allowed is not None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = "X-Mschat-Session"
        response.headers.add("Vary", "Origin")


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a token configured, every route but /healthz needs ``Authorization: Bearer``."""
    token = settings_of(request).token
    if token and request.path not in PUBLIC_PATHS:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), token.encode("utf-8")
        ):
            raise ApiError(
                401,
                "missing or wrong bearer token (send 'Authorization: Bearer <api.token>')",
                code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer realm="mschat"'},
            )
    return await handler(request)


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared body over ``api.max_body`` before reading it (chunked bodies are
    cut off by the application's ``client_max_size`` while being read)."""
    length = request.content_length
    if length is not None and length > settings_of(request).max_body:
        raise too_large(
            f"the request body is {length} bytes; the limit is {settings_of(request).max_body}"
        )
    return await handler(request)
