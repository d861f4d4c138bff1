"""`serve-admin`'s guards over real sockets: Host (421), Origin (403), the login cookie (401),
the bind refusal, and what a TUI process is given."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from mschat.admin_web.auth import COOKIE, cookie_value
from mschat.admin_web.server import (
    AdminSettings,
    accepted_hosts,
    same_origin,
    serve,
    tui_command,
    tui_environment,
)
from mschat.cli import cli

TOKEN = "s3cret-admin-token"
PASSWORD = "db-pass-word"
#: stands in for the TUI: speaks textual's web-driver protocol just enough to report
#: what it was given (its environment, its own and its shell's command lines)
FAKE_TUI = r"""
import json, os, sys
def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()
report = json.dumps({
    "db": os.environ.get("MSCHAT_DB"),
    "token": os.environ.get("MSCHAT_ADMIN_TOKEN"),
    "driver": os.environ.get("TEXTUAL_DRIVER"),
    "cmdlines": [cmdline(os.getpid()), cmdline(os.getppid())],
}).encode()
sys.stdout.buffer.write(b"__GANGLION__\n" + b"D" + len(report).to_bytes(4, "big") + report)
sys.stdout.flush()
"""


class Admin:
    """A running admin server and a client of it."""

    def __init__(self, url: str, client: aiohttp.ClientSession) -> None:
        self.url = url
        self.client = client
        self.host = url.removeprefix("http://")

    def get(self, path: str, **kwargs: object):
        """GET without following redirects."""
        return self.client.get(self.url + path, allow_redirects=False, **kwargs)

    def post(self, path: str, **kwargs: object):
        """POST without following redirects."""
        return self.client.post(self.url + path, allow_redirects=False, **kwargs)


async def start(settings: AdminSettings) -> AsyncIterator[Admin]:
    stop = asyncio.Event()
    started: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(settings, "127.0.0.1", 0, stop=stop, on_start=started.set_result)
    )
    try:
        urls = await asyncio.wait_for(started, 10)
        async with aiohttp.ClientSession() as client:
            yield Admin(urls[0], client)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def settings(token: str | None, command: str = "false", **env: str) -> AdminSettings:
    return AdminSettings(
        token=token, allowed_hosts=accepted_hosts([], "127.0.0.1"), command=command, env=env
    )


@pytest.fixture
async def admin() -> AsyncIterator[Admin]:
    """The admin server with a token, whose TUI is the fake one."""
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(FAKE_TUI)}"
    env = tui_environment(f"postgresql://admin:{PASSWORD}@127.0.0.1/mschat", Path("/nonexistent"))
    async for running in start(settings(TOKEN, command, **env)):
        yield running


@pytest.fixture
async def open_admin() -> AsyncIterator[Admin]:
    """The admin server without a token (loopback)."""
    async for running in start(settings(None)):
        yield running


def logged_in() -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={cookie_value(TOKEN)}"}


async def test_a_foreign_host_is_refused(admin: Admin):
    port = admin.host.rpartition(":")[2]
    for path in ("/", "/login", "/ws", "/static/js/textual.js"):
        async with admin.get(path, headers={"Host": f"evil.example:{port}", **logged_in()}) as r:
            assert r.status == 421, path
    for host in (f"localhost:{port}", admin.host):
        async with admin.get("/login", headers={"Host": host}) as response:
            assert response.status == 200


async def test_without_the_cookie_nothing_but_the_login_page(admin: Admin):
    async with admin.get("/") as response:
        assert response.status == 303
        assert response.headers["Location"] == "/login"
    for path in ("/ws", "/static/js/textual.js", "/assets/admin.js", "/download/x"):
        async with admin.get(path) as response:
            assert response.status == 401, path
    async with admin.get("/", headers={"Cookie": f"{COOKIE}={TOKEN}"}) as response:
        assert response.status == 303  # the token itself is not the cookie
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await admin.client.ws_connect(admin.url + "/ws", origin=admin.url)
    assert refused.value.status == 401
    async with admin.get("/login") as response:
        assert response.status == 200
        page = await response.text()
        assert 'type="password"' in page and "googleapis" not in page
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_the_right_token_logs_in(admin: Admin):
    async with admin.post("/login", data={"token": TOKEN}) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/"
        cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={cookie_value(TOKEN)};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    async with admin.get("/", headers=logged_in()) as response:
        assert response.status == 200
        page = await response.text()
        assert "/static/js/textual.js" in page and "googleapis" not in page
    async with admin.get(f"/?token={TOKEN}") as response:  # a link with the token, once
        assert response.status == 303
        assert response.headers["Location"] == "/"
        assert response.headers["Set-Cookie"].startswith(f"{COOKIE}={cookie_value(TOKEN)};")


async def test_a_wrong_token_is_refused(admin: Admin):
    for wrong in ("", "s3cret", TOKEN + "x", "é" * 3):
        async with admin.post("/login", data={"token": wrong}) as response:
            assert response.status == 401
            assert "Set-Cookie" not in response.headers
            assert "Wrong token" in await response.text()
    async with admin.get("/?token=nope") as response:
        assert response.status == 401
        assert "Set-Cookie" not in response.headers
    async with admin.get("/", headers={"Cookie": f"{COOKIE}={cookie_value('nope')}"}) as r:
        assert r.status == 303


async def test_another_sites_page_is_refused(admin: Admin):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await admin.client.ws_connect(
            admin.url + "/ws", origin="http://evil.example", headers=logged_in()
        )
    assert refused.value.status == 403
    other_port = f"http://{admin.host.rpartition(':')[0]}:1"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await admin.client.ws_connect(admin.url + "/ws", origin=other_port, headers=logged_in())
    assert refused.value.status == 403
    headers = {"Origin": "http://evil.example"}
    async with admin.post("/login", data={"token": TOKEN}, headers=headers) as response:
        assert response.status == 403


async def test_the_tui_gets_the_database_in_its_environment_only(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MSCHAT_ADMIN_TOKEN", TOKEN)
    async with admin.client.ws_connect(
        admin.url + "/ws?width=100&height=30", origin=admin.url, headers=logged_in()
    ) as websocket:
        message = await websocket.receive(timeout=20)
        assert message.type == aiohttp.WSMsgType.BINARY
        report = json.loads(message.data)
        # the TUI ended: the browser's socket is closed
        assert (await websocket.receive(timeout=20)).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        )
    assert report["db"] == f"postgresql://admin:{PASSWORD}@127.0.0.1/mschat"
    assert report["token"] is None
    assert report["driver"] == "textual.drivers.web_driver:WebDriver"
    assert not any(PASSWORD in line for line in report["cmdlines"])


async def test_malformed_messages_from_the_browser_are_dropped(admin: Admin):
    async with admin.client.ws_connect(
        admin.url + "/ws?width=x&height=-3", origin=admin.url, headers=logged_in()
    ) as websocket:
        for junk in ("not json", "[]", '{"a": 1}', '["resize", {"width": "9e99"}]', '["stdin", 5]'):
            await websocket.send_str(junk)
        # the server is still there: the fake TUI's report comes, then the end
        assert (await websocket.receive(timeout=20)).type == aiohttp.WSMsgType.BINARY
        assert (await websocket.receive(timeout=20)).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        )


async def test_on_loopback_without_a_token_there_is_no_login(open_admin: Admin):
    async with open_admin.get("/") as response:
        assert response.status == 200
    async with open_admin.get("/login") as response:
        assert response.status == 303


def test_a_public_bind_without_a_token_is_refused(mschat_home: Path):
    result = CliRunner().invoke(cli, ["serve-admin", "--host", "0.0.0.0", "--port", "5999"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "refusing" in result.output and "MSCHAT_ADMIN_TOKEN" in result.output


def test_the_command_holds_no_secret():
    assert (
        tui_command("/opt/my python/bin/python")
        == "'/opt/my python/bin/python' -m mschat tui --admin"
    )
    shown = repr(settings(TOKEN, **tui_environment("postgresql://u:pw@h/db", Path("/x"))))
    assert TOKEN not in shown and "pw" not in shown


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:5003", "127.0.0.1:5003", True),
        ("https://admin.example.org", "admin.example.org", True),  # behind a TLS proxy
        ("https://admin.example.org", "ADMIN.example.org:443", True),
        ("http://[::1]:5003", "[::1]:5003", True),
        ("http://127.0.0.1:5004", "127.0.0.1:5003", False),
        ("http://admin.example.org.evil.example", "admin.example.org", False),
        ("null", "127.0.0.1:5003", False),
        ("file://", "127.0.0.1:5003", False),
        ("http://127.0.0.1:99999", "127.0.0.1:5003", False),
        ("http://127.0.0.1:5003", None, False),
    ],
)
def test_same_origin(origin: str, host: str | None, same: bool):
    assert same_origin(origin, host) is same
