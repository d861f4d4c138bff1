"""The aiohttp application factory (``make_api``) and the ``serve-api`` runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TextIO

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from mschat import __version__
from mschat.api import chat, middleware, sessions, v1
from mschat.api.context import IN_FLIGHT, SERVICES, SETTINGS, ApiSettings, services_of
from mschat.api.errors import ApiError, json_response
from mschat.api.hosts import WILDCARDS, is_loopback, normalise
from mschat.api.openapi import openapi_document
from mschat.core.errors import ConfigError
from mschat.core.services import Services

#: seconds in-flight requests get to finish on shutdown before they are cancelled
#: (a cancelled reply is stored as interrupted by the core)
SHUTDOWN_TIMEOUT = 10.0
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'
ACCESS_LOGGER = "mschat.api.access"
#: GIL switch interval of the serve-api process. Store calls run on a worker thread;
#: with the default 5 ms it waits for the GIL while the event loop is busy (measured:
#: +15-50 % requests/s and a lower p99 at 32 concurrent clients with 0.5 ms).
SWITCH_INTERVAL = 0.0005
#: longest request line (method, URL, version) in bytes; longer ones get 414
MAX_REQUEST_LINE = 8190
#: longest header in bytes; longer ones get 431. One more than the request line, so
#: the parser's error (which carries only the limit it hit) says which one it was
MAX_HEADER = MAX_REQUEST_LINE + 2


async def healthz(request: web.Request) -> web.StreamResponse:
    """GET /healthz: the server answers and the database is readable."""
    await services_of(request).manager.data_version()
    return json_response({"status": "ok", "version": __version__})


async def openapi(request: web.Request) -> web.StreamResponse:
    """GET /openapi.json: the OpenAPI 3 document of every endpoint."""
    return json_response(openapi_document())


def make_api(
    services: Services,
    *,
    token: str | None = None,
    max_body: int | None = None,
    default_user: str | None = None,
    cors_origins: list[str] | None = None,
    allowed_hosts: list[str] | None = None,
    bind_host: str | None = None,
) -> web.Application:
    """The API application over ``services``; settings default to the config's api.*.

    ``token=""`` turns auth off even when api.token is set. ``bind_host`` (default
    api.host) is a Host name accepted besides ``allowed_hosts`` and loopback.
    """
    config = services.config
    if token is None:
        token = config.get("api", "token")
    hosts = list(allowed_hosts if allowed_hosts is not None else config.get("api", "allowed_hosts"))
    bound = str(config.get("api", "host") if bind_host is None else bind_host)
    if bound.strip() not in WILDCARDS:
        hosts.append(bound)
    settings = ApiSettings(
        token=token or None,
        max_body=max_body or int(config.get("api", "max_body")),
        default_user=default_user or str(config.get("api", "default_user")),
        cors_origins=tuple(
            cors_origins if cors_origins is not None else config.get("api", "cors_origins")
        ),
        allowed_hosts=normalise(hosts),
    )
    app = web.Application(
        middlewares=[
            middleware.track,
            middleware.errors,
            middleware.guard,
            middleware.auth,
            middleware.json_body,
            middleware.body_limit,
        ],
        client_max_size=settings.max_body,
    )
    app.on_response_prepare.append(middleware.add_cors_headers)
    app.on_startup.append(_watch_replies)
    app[SERVICES] = services
    app[SETTINGS] = settings
    app[IN_FLIGHT] = set()
    app.router.add_post("/chat", chat.chat)
    app.router.add_post("/chat-stream", chat.chat_stream)
    app.router.add_get("/users/{user}", sessions.get_user)
    app.router.add_patch("/users/{user}", sessions.patch_user)
    app.router.add_get("/users/{user}/sessions", sessions.list_sessions)
    app.router.add_post("/users/{user}/sessions", sessions.create_session)
    app.router.add_get("/sessions/{id}", sessions.get_session)
    app.router.add_patch("/sessions/{id}", sessions.patch_session)
    app.router.add_delete("/sessions/{id}", sessions.delete_session)
    app.router.add_post("/v1/chat/completions", v1.chat_completions)
    app.router.add_get("/v1/models", v1.models)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/healthz", healthz)
    return app


def parse_error(status: int, exc: BaseException | None) -> ApiError:
    """The JSON error for a request aiohttp's parser refused (never echoing its bytes)."""
    if isinstance(exc, LineTooLong):
        if exc.args[1] == MAX_REQUEST_LINE:
            return ApiError(
                414, f"the URL is longer than {MAX_REQUEST_LINE} bytes", code="uri_too_long"
            )
        return ApiError(
            431, f"a request header is longer than {MAX_HEADER} bytes", code="header_too_large"
        )
    if isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
        return ApiError(431, "the request has too many headers", code="too_many_headers")
    if status >= 500:
        return ApiError(500, "internal server error", code="internal_error")
    return ApiError(status, "the request is not valid HTTP", code="bad_http_request")


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler; requests its parser refuses (a URL or a header
    too long, bytes that are not HTTP) are answered in the API's JSON error shape."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON error shape instead of aiohttp's plain text (same logging)."""
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            self.logger.debug("Bad request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun: the error cannot be sent")
        response = parse_error(status, exc).response()
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    """aiohttp's server, making ``_JsonErrorHandler`` connections."""

    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        # aiohttp builds its RequestHandler itself and has no hook for parse errors;
        # the subclass only adds a method, so its instances share the layout
        handler.__class__ = _JsonErrorHandler
        return handler


class ApiRunner(web.AppRunner):
    """The runner of the API application: request-line and header limits, and their
    errors (and any other the parser finds) in the JSON error shape."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, max_line_size=MAX_REQUEST_LINE, max_field_size=MAX_HEADER, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (ConfigError says why)."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve the API on {host or 'all interfaces'} without a token: anyone "
            "who can reach it could read and write every API user's sessions",
            hint="set api.token in the config file or MSCHAT_API_TOKEN, or bind 127.0.0.1",
        )


def access_logger(stream: TextIO | None = None) -> logging.Logger:
    """The logger writing one line per request to stderr."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


async def _watch_replies(app: web.Application) -> None:
    """Replies of dead processes are marked interrupted while the server runs; old
    logs are pruned at its start and daily."""
    services = app[SERVICES]
    services.manager.watch_replies()
    services.manager.keep_logs_pruned(services.config.get("logs", "retention_days"))


async def serve(
    services: Services,
    host: str,
    port: int,
    *,
    token: str | None = None,
    stop: asyncio.Event | None = None,
    on_start: Callable[[list[str]], None] | None = None,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM), then shut down cleanly.

    ``on_start`` receives the base URLs once listening. On shutdown in-flight
    requests get ``shutdown_timeout`` seconds; replies still streaming after
    that are cancelled and stored as interrupted by the core.
    """
    check_bind(host, token)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    app = make_api(services, token=token, bind_host=host)
    runner = ApiRunner(
        app,
        access_log=access_logger(),
        access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        urls = []
        for address in runner.addresses:
            shown = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
            urls.append(f"http://{shown}:{address[1]}")
            print(f"mschat API listening on {urls[-1]}", file=sys.stderr, flush=True)
        if on_start is not None:
            on_start(urls)
        print(
            f"auth: {'bearer token required' if token else 'none (loopback only)'}; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        print("mschat API shutting down", file=sys.stderr, flush=True)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        # stops listening, lets in-flight requests finish (then cancels them)
        await runner.cleanup()
        # requests still running after the grace period are cancelled here and awaited,
        # so the core marks their replies interrupted before the database is closed
        pending = {task for task in app[IN_FLIGHT] if not task.done()}
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)


def run(services: Services, *, host: str | None = None, port: int | None = None) -> None:
    """``mschat serve-api``: serve until SIGINT/SIGTERM; ConfigError when refused."""
    config = services.config
    host = host if host is not None else str(config.get("api", "host"))
    port = port if port is not None else int(config.get("api", "port"))
    token = config.get("api", "token") or None
    check_bind(host, token)
    sys.setswitchinterval(SWITCH_INTERVAL)

    async def main() -> None:
        services.live.start()  # `mschat config set` applies here within a second
        services.reload_on_sighup()
        try:
            await serve(services, host, port, token=token)
        finally:
            await services.aclose()

    asyncio.run(main())
