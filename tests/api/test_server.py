"""Server concerns over a real socket: auth, limits, errors, binding, shutdown, access log."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from mschat.api.server import check_bind, is_loopback, make_api, serve
from mschat.cli import cli
from mschat.core.errors import ConfigError
from mschat.core.services import Services
from tests.api.conftest import LiveApi, fake_config, live_api, sse_json
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.scripted_provider import ScriptedProvider


async def test_token_required_on_every_route_but_healthz(services: Services):
    async for live in live_api(services, token="s3cret-token-value"):
        client = live.client
        for method, path in [
            ("POST", "/chat"),
            ("GET", "/users/a/sessions"),
            ("GET", "/v1/models"),
            ("GET", "/openapi.json"),
            ("GET", "/nowhere"),
        ]:
            response = await client.request(method, path, json={"message": "x", "user": "a"})
            assert response.status_code == 401, path
            assert response.json()["error"]["type"] == "authentication_error"
            assert response.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "s3cret" not in wrong.text
        assert (await client.get("/healthz")).status_code == 200
        good = {"Authorization": "Bearer s3cret-token-value"}
        ok = await client.post("/chat", json={"message": "hi", "user": "a"}, headers=good)
        assert ok.status_code == 200 and ok.json()["response"] == "Echo: hi"


async def test_token_comes_from_the_config_unless_turned_off(services: Services):
    services.config.sections["api"]["token"] = "from-config"
    async for live in live_api(services):
        assert (await live.client.get("/v1/models")).status_code == 401
        response = await live.client.get(
            "/v1/models", headers={"Authorization": "Bearer from-config"}
        )
        assert response.status_code == 200
    async for live in live_api(services, token=""):
        assert (await live.client.get("/v1/models")).status_code == 200
    assert "from-config" not in repr(make_api(services))


async def test_no_token_means_open(api: LiveApi):
    assert (await api.client.get("/v1/models")).status_code == 200
    health = (await api.client.get("/healthz")).json()
    assert health["status"] == "ok"


@pytest.mark.parametrize(
    ("content", "param", "code"),
    [
        (b"{not json", "body", "invalid_json"),
        (b"[1, 2]", "body", "invalid_json"),
        (b"", "body", "invalid_json"),
        (b'{"message": NaN, "user": "a"}', "body", "invalid_json"),
        (b'{"message": "x", "user": ""}', "user", "invalid_field"),
        (b'{"message": "x"}', "user", "missing_field"),
    ],
)
async def test_bad_json_is_400_naming_the_field(
    api: LiveApi, content: bytes, param: str, code: str
):
    response = await api.client.post(
        "/chat", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == code


async def test_bodies_over_the_limit_are_413(services: Services):
    async for live in live_api(services, token="", max_body=1000):
        big = {"message": "x" * 2000, "user": "a"}
        declared = await live.client.post("/chat", json=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "body_too_large"

        async def chunks():
            for _ in range(20):
                yield b"x" * 100

        # no Content-Length: the limit applies while reading
        streamed = await live.client.post(
            "/users/a/sessions", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "body_too_large"
        small = await live.client.post("/chat", json={"message": "fits", "user": "a"})
        assert small.status_code == 200


async def test_unknown_routes_and_methods_answer_json(api: LiveApi):
    missing = await api.client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    wrong = await api.client.get("/chat")
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    assert wrong.json()["error"]["message"]


async def test_openapi_document_describes_every_route(api: LiveApi):
    document = (await api.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    app = make_api(api.services, token="")
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
    }
    assert documented == served


def test_binding_beyond_loopback_needs_a_token():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "", "::", "192.168.1.10", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match="token"):
            check_bind(host, None)
        check_bind(host, "secret")


def test_cli_refuses_a_public_bind_without_token(mschat_home: Path):
    (mschat_home / "config.toml").write_text(
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
    )
    result = CliRunner().invoke(cli, ["serve-api", "--host", "0.0.0.0", "--port", "5999"])
    assert result.exit_code == 1
    assert "refusing" in result.output and "MSCHAT_API_TOKEN" in result.output


async def test_shutdown_waits_for_a_stream_in_flight(
    services: Services, provider: ScriptedProvider
):
    gate = asyncio.Event()
    provider.push(chunks=["first ", "second"], gate=gate)
    stop = asyncio.Event()
    ready: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve(
            services,
            "127.0.0.1",
            0,
            token=None,
            stop=stop,
            on_start=ready.set_result,
            shutdown_timeout=10,
        )
    )
    url = (await asyncio.wait_for(ready, 10))[0]
    async with (
        httpx.AsyncClient(base_url=url, timeout=20) as client,
        client.stream("POST", "/chat-stream", json={"message": "go", "user": "sam"}) as response,
    ):
        lines = response.aiter_lines()
        async for line in lines:
            if line.startswith("data:") and "first" in line:
                break
        stop.set()  # shutdown requested while the reply is streaming
        gate.set()
        rest = "".join([line + "\n" async for line in lines])
    await asyncio.wait_for(server, 15)
    assert sse_json(rest)[-1] == ("done", sse_json(rest)[-1][1])
    assert sse_json(rest)[-1][1]["response"] == "first second"
    sam = await services.manager.user("api", "sam")
    sessions = await services.manager.list_sessions(sam)
    stored = await services.manager.messages(sam, sessions[0].id)
    assert stored[-1].status == "complete"


async def test_shutdown_marks_a_stuck_stream_interrupted(
    services: Services, provider: ScriptedProvider
):
    provider.push(chunks=["partial", "never"], gate=asyncio.Event())  # never released
    stop = asyncio.Event()
    ready: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve(services, "127.0.0.1", 0, stop=stop, on_start=ready.set_result, shutdown_timeout=0.2)
    )
    url = (await asyncio.wait_for(ready, 10))[0]
    async with (
        httpx.AsyncClient(base_url=url, timeout=20) as client,
        client.stream("POST", "/chat-stream", json={"message": "go", "user": "tom"}) as response,
    ):
        async for line in response.aiter_lines():
            if "partial" in line:
                break
        stop.set()
        await asyncio.wait_for(server, 15)
    tom = await services.manager.user("api", "tom")
    sessions = await services.manager.list_sessions(tom)
    stored = await services.manager.messages(tom, sessions[0].id)
    assert [(m.role, m.status) for m in stored] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
    ]
    assert stored[-1].content == "partial"


async def _read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> str:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"stream ended before {marker!r}: {seen}")
        seen.append(line)
        if marker in line:
            return line


async def test_serve_api_process_logs_requests_and_stops_on_sigterm(
    mschat_home: Path, fake_openai: FakeOpenAI
):
    fake_config(mschat_home, fake_openai.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mschat",
        "serve-api",
        "--port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        env={**os.environ, "MSCHAT_API_TOKEN": "tok-123"},
    )
    seen: list[str] = []
    try:
        assert process.stderr is not None
        line = await asyncio.wait_for(_read_until(process.stderr, "listening on", seen), 30)
        url = line.split("listening on", 1)[1].strip()
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            response = await client.post(
                "/chat",
                json={"message": "Who are you?", "user": "shiyemin"},
                headers={"Authorization": "Bearer tok-123"},
            )
            assert response.status_code == 200
            assert "Who are you?" in response.json()["response"]
            stream = await client.post(
                "/chat-stream",
                json={"message": "more", "user": "shiyemin"},
                headers={"Authorization": "Bearer tok-123"},
            )
            assert sse_json(stream.text)[-1][0] == "done"
        log = await asyncio.wait_for(
            _read_until(process.stderr, '"POST /chat HTTP/1.1" 200', seen), 10
        )
        assert "tok-123" not in log
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        rest = (await process.stderr.read()).decode()
        assert process.returncode == 0, "".join(seen) + rest
        assert "shutting down" in rest
        assert "tok-123" not in "".join(seen) + rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_busy_port_is_a_clear_config_error(services: Services):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve(services, "127.0.0.1", port, stop=asyncio.Event())


async def test_cors_for_configured_origins_only(services: Services):
    origin = "https://chat.example.org"
    async for live in live_api(services, token="cors-token", cors_origins=[origin]):
        client = live.client
        preflight = await client.options(
            "/chat",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204  # no token needed for a preflight
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        auth = {"Authorization": "Bearer cors-token", "Origin": origin}
        answer = await client.post("/chat", json={"message": "hi", "user": "w"}, headers=auth)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == origin
        async with client.stream(
            "POST", "/chat-stream", json={"message": "hi", "user": "w"}, headers=auth
        ) as stream:
            assert stream.headers["access-control-allow-origin"] == origin
            await stream.aread()
        stranger = {"Authorization": "Bearer cors-token", "Origin": "https://evil.example"}
        other = await client.get("/v1/models", headers=stranger)
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
        refused = await client.options(
            "/chat",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert refused.status_code == 403  # another origin: refused, token or not
        assert refused.json()["error"]["code"] == "origin_not_allowed"
