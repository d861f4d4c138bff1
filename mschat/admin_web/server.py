"""The aiohttp application of ``serve-admin`` (``make_admin``) and its runner (``run``).

Routes: ``/`` (the page running textual.js), ``/ws`` (one ``mschat tui`` process
per connection, through textual-serve's ``AppService``), ``/static`` (textual-serve's
JavaScript, CSS and fonts), ``/assets`` (this package's), ``/login``. There is no
download route. Every request passes the Host check (421); pages and the
WebSocket of another origin are refused (403); with a token, everything but the
login page needs the login cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import NoReturn
from urllib.parse import urlsplit

import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

from mschat.admin_web.auth import COOKIE, cookie_matches, cookie_value, token_matches
from mschat.api.hosts import WILDCARDS, allowed_host, host_name, is_loopback, normalise
from mschat.core.errors import ConfigError

log = logging.getLogger("mschat.admin_web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HERE = Path(__file__).parent
PAGES = HERE / "pages"
ASSETS = HERE / "assets"
#: textual-serve's textual.js, xterm.css and RobotoMono fonts
STATIC = Path(textual_serve.__file__).parent / "static"
#: what may be fetched without the login cookie: the login page and its style
PUBLIC_PATHS = frozenset({"/login", "/assets/admin.css"})
#: environment variables a TUI process never needs (the admin's own secret)
WITHHELD = ("MSCHAT_ADMIN_TOKEN",)
#: seconds a TUI process gets to quit when its browser goes away, before it is killed
QUIT_TIMEOUT = 5.0
#: the largest login form, in bytes
MAX_BODY = 16 * 1024
#: the terminal sizes a browser may ask for (cells)
MAX_CELLS = 1000
#: no inline scripts, nothing from other sites, never inside another site's frame
#: (a framed admin would take keystrokes meant for someone else's page)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class AdminSettings:
    """What the admin server needs: auth, accepted Host names, the TUI command and its env."""

    #: the login token; None: no login (loopback only)
    token: str | None = field(repr=False)
    #: Host names accepted besides loopback and the connection's own address
    allowed_hosts: frozenset[str]
    #: the shell command of one TUI process (textual-serve runs it through the shell)
    command: str
    #: variables set for every TUI process (the database URL may hold a password)
    env: Mapping[str, str] = field(repr=False, default_factory=dict)


SETTINGS = web.AppKey("settings", AdminSettings)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")


def tui_command(python: str = sys.executable) -> str:
    """The shell command running the TUI on its Admin screen with this interpreter (its
    path quoted)."""
    return f"{shlex.quote(python)} -m mschat tui --admin"


def tui_environment(db: str, config_file: Path) -> dict[str, str]:
    """What a TUI process is told: the server's database and config file.

    Given in the environment, never on a command line (``ps`` shows those to
    every user of the machine, and a database URL may hold a password).
    """
    env = {"MSCHAT_DB": db}
    if config_file.exists():  # else the TUI looks where the server did, and finds none either
        env["MSCHAT_CONFIG"] = str(config_file)
    return env


class TuiService(AppService):
    """textual-serve's process of one browser connection, with mschat's environment."""

    def __init__(self, command: str, env: Mapping[str, str], **kwargs: object) -> None:
        super().__init__(command, **kwargs)  # type: ignore[arg-type]
        self.extra_env = dict(env)

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width=width, height=height)
        for name in WITHHELD:
            environment.pop(name, None)
        environment.update(self.extra_env)
        return environment

    async def run(self) -> None:
        """Relay the TUI's output; when it ends (quit, crash), the browser's socket closes."""
        await super().run()
        await self.remote_close()

    async def stop(self) -> None:
        """Ask the TUI to quit; kill it when it does not within ``QUIT_TIMEOUT``."""
        process = self._process
        try:
            async with asyncio.timeout(QUIT_TIMEOUT):
                await super().stop()
                if process is not None:
                    await process.wait()
        except TimeoutError:
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()


def _page(name: str, **values: str) -> str:
    return Template((PAGES / name).read_text(encoding="utf-8")).substitute(values)


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def _local_address(request: web.Request) -> str | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return str(sockname[0]) if isinstance(sockname, tuple) and sockname else None


def same_origin(origin: str, host: str | None) -> bool:
    """Whether a browser's Origin header names the site of this request's Host."""
    if host is None:
        return False
    try:
        page, own = urlsplit(origin.strip()), urlsplit(f"//{host.strip()}")
        ports = page.port, own.port
    except ValueError:
        return False
    if page.scheme not in ("http", "https") or not page.hostname:
        return False
    # a Host without a port (behind a proxy) is on the default port of the page's scheme
    default = 443 if page.scheme == "https" else 80
    return (page.hostname, ports[0] or default) == (own.hostname, ports[1] or default)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a Host that is not this server (421, DNS rebinding) and, for the WebSocket
    and forms, an Origin that is not this page's own (403, cross-site hijacking)."""
    settings = request.app[SETTINGS]
    host = request.headers.get("Host")
    if not allowed_host(host, settings.allowed_hosts, _local_address(request)):
        return web.Response(
            status=421,
            text="this server does not answer for that Host header "
            "(list the name in admin.allowed_hosts)\n",
        )
    origin = request.headers.get("Origin")
    checked = request.method not in ("GET", "HEAD") or request.path == "/ws"
    if checked and origin is not None and not same_origin(origin, host):
        log.warning("refused a request from another site's page (%s)", host_name(origin) or "?")
        return web.Response(status=403, text="requests from other sites' pages are refused\n")
    return await handler(request)


def _login_response(request: web.Request) -> NoReturn:
    """Set the login cookie and go to the page (raises the redirect)."""
    response = web.HTTPSeeOther("/")
    token = request.app[SETTINGS].token
    assert token is not None
    response.set_cookie(
        COOKIE,
        cookie_value(token),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    log.info("admin login from %s", request.remote)
    raise response


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a token, everything but the login page needs the login cookie: the page
    redirects to the login form, anything else is 401. ``/?token=…`` logs in once."""
    token = request.app[SETTINGS].token
    if not token or request.path in PUBLIC_PATHS:
        return await handler(request)
    if request.path == "/" and request.method == "GET" and "token" in request.query:
        if token_matches(request.query["token"], token):
            _login_response(request)  # raises: to "/", so the token leaves the address bar
        log.warning("wrong admin token from %s", request.remote)
        return _html(_page("login.html", error="Wrong token."), status=401)
    if cookie_matches(request.cookies.get(COOKIE), token):
        return await handler(request)
    if request.path == "/" and request.method == "GET":
        raise web.HTTPSeeOther("/login")
    return web.Response(status=401, text="log in first (/login)\n")


async def index(request: web.Request) -> web.StreamResponse:
    """GET /: the page whose textual.js connects to /ws."""
    try:
        font_size = min(max(int(request.query.get("fontsize", "16")), 6), 64)
    except ValueError:
        font_size = 16
    return _html(_page("index.html", font_size=str(font_size)))


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login: the token form (or the page itself when no token is configured)."""
    if not request.app[SETTINGS].token:
        raise web.HTTPSeeOther("/")
    return _html(_page("login.html", error=""))


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: the right token sets the login cookie and goes to the page."""
    token = request.app[SETTINGS].token
    if not token:
        raise web.HTTPSeeOther("/")
    form = await request.post()
    given = form.get("token")
    if isinstance(given, str) and token_matches(given, token):
        _login_response(request)
    log.warning("wrong admin token from %s", request.remote)
    return _html(_page("login.html", error="Wrong token."), status=401)


def _cells(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CELLS:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return min(max(int(value), 1), MAX_CELLS)
    return default


async def _relay(websocket: web.WebSocketResponse, service: TuiService) -> None:
    """Pass the browser's keys, sizes and focus to the TUI; anything malformed is dropped."""
    async for message in websocket:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            envelope = json.loads(message.data)
        except ValueError:
            continue
        if not isinstance(envelope, list) or not envelope:
            continue
        kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
        if kind == "stdin" and isinstance(data, str):
            await service.send_bytes(data.encode("utf-8", "replace"))
        elif kind == "resize" and isinstance(data, dict):
            await service.set_terminal_size(
                _cells(data.get("width"), 80), _cells(data.get("height"), 24)
            )
        elif kind == "ping" and isinstance(data, str):
            await websocket.send_json(["pong", data])
        elif kind == "blur":
            await service.blur()
        elif kind == "focus":
            await service.focus()


async def terminal(request: web.Request) -> web.StreamResponse:
    """GET /ws: one TUI process for this connection, until either side goes away."""
    settings = request.app[SETTINGS]
    websocket = web.WebSocketResponse(heartbeat=15)
    await websocket.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(websocket)
    service = TuiService(
        settings.command,
        settings.env,
        write_bytes=websocket.send_bytes,
        write_str=websocket.send_str,
        close=websocket.close,
        download_manager=DownloadManager(),
    )
    try:
        await service.start(
            _cells(request.query.get("width"), 80), _cells(request.query.get("height"), 24)
        )
        await _relay(websocket, service)
    finally:
        sockets.discard(websocket)
        await service.stop()
    return websocket


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # the first URL may carry ?token=: never sent to another site ("no-referrer" would
    # also make the browser send "Origin: null" with the login form)
    response.headers["Referrer-Policy"] = "same-origin"


async def _close_sockets(app: web.Application) -> None:
    """On shutdown: close every browser's socket, so each TUI process is asked to quit."""
    sockets = app[SOCKETS]
    for websocket in list(sockets):
        await websocket.close(code=1001, message=b"server shutting down")


def make_admin(settings: AdminSettings) -> web.Application:
    """The admin application over ``settings``."""
    app = web.Application(middlewares=[guard, auth], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[SOCKETS] = set()
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/ws", terminal)
    app.router.add_static("/static", STATIC)
    app.router.add_static("/assets", ASSETS)
    return app


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (ConfigError says why)."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve the admin on {host or 'all interfaces'} without a token: "
            "anyone who can reach it would be the admin of every session",
            hint="set admin.token in the config file or MSCHAT_ADMIN_TOKEN, or bind 127.0.0.1",
        )


def accepted_hosts(names: list[str], host: str) -> frozenset[str]:
    """``admin.allowed_hosts`` plus the bound name (unless a wildcard address)."""
    names = list(names)
    if host.strip() not in WILDCARDS:
        names.append(host)
    return normalise(names)


async def serve(
    settings: AdminSettings,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    on_start: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM); every TUI process is ended then."""
    check_bind(host, settings.token)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    runner = web.AppRunner(make_admin(settings), access_log=None, shutdown_timeout=QUIT_TIMEOUT)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        urls = []
        for address in runner.addresses:
            shown = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
            urls.append(f"http://{shown}:{address[1]}")
        auth_kind = "token login" if settings.token else "none, loopback only"
        log.info("serving the admin on %s (auth: %s)", ", ".join(urls), auth_kind)
        if on_start is not None:
            on_start(urls)
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def run(
    *,
    host: str,
    port: int,
    token: str | None,
    allowed_hosts: list[str],
    db: str,
    config_file: Path,
) -> None:
    """``mschat serve-admin``: serve until SIGINT/SIGTERM; ConfigError when refused."""
    check_bind(host, token)
    settings = AdminSettings(
        token=token,
        allowed_hosts=accepted_hosts(allowed_hosts, host),
        command=tui_command(),
        env=tui_environment(db, config_file),
    )
    asyncio.run(serve(settings, host, port))
