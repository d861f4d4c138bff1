"""Middlewares, outermost first: JSON errors for everything; the Host and Origin
checks (421, 403) and CORS preflights; bearer-token auth (401); the JSON content
type of bodies (415); the body-size limit (413)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from mschat.api.context import IN_FLIGHT, settings_of
from mschat.api.errors import ApiError, from_mschat
from mschat.api.fields import too_large
from mschat.api.hosts import allowed_host
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
CORS_HEADERS = "Authorization, Content-Type, X-Mschat-Session, Idempotency-Key"


def _allowed_origin(request: web.Request) -> str | None:
    """The value of Access-Control-Allow-Origin for this request, if CORS allows it."""
    origins = settings_of(request).cors_origins
    origin = request.headers.get("Origin")
    if not origins or origin is None:
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


#: methods whose body must be JSON
BODY_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _local_address(request: web.Request) -> str | None:
    """The address of this server the connection arrived at."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return str(sockname[0]) if isinstance(sockname, tuple) and sockname else None


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what a web page could send on its own, before anything else (token or not):
    a Host that is not this server (421, DNS rebinding) and an Origin not in
    ``api.cors_origins`` (403); answer the preflights of the configured origins."""
    settings = settings_of(request)
    if not allowed_host(
        request.headers.get("Host"), settings.allowed_hosts, _local_address(request)
    ):
        raise ApiError(
            421,
            "this server does not answer for that Host header; a name other than this "
            "machine's loopback or the address it listens on must be listed in api.allowed_hosts",
            code="host_not_allowed",
            param="Host",
        )
    if "Origin" in request.headers and _allowed_origin(request) is None:
        raise ApiError(
            403,
            "requests from web pages are refused unless their origin is listed in api.cors_origins",
            code="origin_not_allowed",
            param="Origin",
        )
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    if preflight and "Origin" in request.headers:
        # an allowed origin's preflight carries no token: answer it before auth
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
async def json_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A body sent with POST, PATCH, PUT or DELETE must be ``application/json`` (a web
    form or ``text/plain`` body, which a page may send anywhere, is refused)."""
    has_body = request.method in BODY_METHODS and request.body_exists
    if has_body and request.content_type != "application/json":
        raise ApiError(
            415,
            "the request body must be JSON, sent with 'Content-Type: application/json'",
            code="unsupported_media_type",
            param="Content-Type",
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
