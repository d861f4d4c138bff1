"""What a web page (or a hostile client) could send: Host, Origin and Content-Type
checks, oversized and malformed requests, odd header values. Real sockets throughout."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import pytest

from mschat.api.hosts import allowed_host, host_name
from mschat.core.services import Services
from tests.api.conftest import LiveApi, live_api

TOKEN = "guard-token-0123456789"
CHAT = {"message": "hi", "user": "gus"}


async def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client tidies them up); returns status, headers, body."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, payload


def request_head(method: str, path: str, *headers: str | bytes) -> bytes:
    """A request line and headers (closing the connection after the answer)."""
    lines = [f"{method} {path} HTTP/1.1", *headers, "Connection: close"]
    return b"".join(
        (line if isinstance(line, bytes) else line.encode("latin-1")) + b"\r\n" for line in lines
    )


def assert_json_error(status: int, headers: dict, payload: bytes, expected: int) -> dict:
    assert status == expected, payload[:300]
    assert headers["content-type"].startswith("application/json")
    error = json.loads(payload)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    return error


@pytest.fixture
async def guarded(services: Services) -> AsyncIterator[LiveApi]:
    """The API with a token, an allowed browser origin and an allowed host name."""
    async for live in live_api(
        services,
        token=TOKEN,
        cors_origins=["https://chat.example.org"],
        allowed_hosts=["chat.example.org", "Proxy.Internal."],
    ):
        yield live


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_a_host_that_is_not_this_server_is_421_before_auth(guarded: LiveApi):
    port = guarded.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "::1"):
        # no token at all: the Host check comes first
        status, headers, payload = await raw_request(
            guarded.url, request_head("GET", "/v1/models", f"Host: {host}")
        )
        error = assert_json_error(status, headers, payload, 421)
        assert error["code"] == "host_not_allowed" and error["param"] == "Host"
        assert "api.allowed_hosts" in error["message"]
        # with the token too: a rebinding page never has it, but the answer is the same
        rebound = await guarded.client.post("/chat", json=CHAT, headers={**AUTH, "Host": host})
        assert rebound.status_code == 421
    assert await guarded.services.manager.find_existing_user("api", "gus") is None
    for host in (
        "localhost",
        f"localhost:{port}",
        "127.0.0.1",
        f"127.0.0.1:{port}",
        "[::1]",
        f"[::1]:{port}",
        "LOCALHOST.",
        "chat.example.org",
        f"chat.example.org:{port}",
        "proxy.internal",
    ):
        status, _, payload = await raw_request(
            guarded.url,
            request_head("GET", "/v1/models", f"Host: {host}", f"Authorization: Bearer {TOKEN}"),
        )
        assert status == 200, (host, payload)


def test_host_rules():
    assert host_name("[::1]:5000") == "::1" and host_name("Example.ORG.:80") == "example.org"
    for bad in ("", "::1", "[::1", "a b", "x:port", "ex.com:", "\udcff", "ex\x00.com"):
        assert host_name(bad) is None
    # the address the connection arrived at is this server, whatever it is bound to
    assert allowed_host("192.168.1.10:5000", frozenset(), "192.168.1.10")
    assert allowed_host("192.168.1.10", frozenset(), "::ffff:192.168.1.10")
    assert not allowed_host("192.168.1.11", frozenset(), "192.168.1.10")
    assert not allowed_host("attacker.example", frozenset(), "192.168.1.10")
    assert allowed_host("anything.example", frozenset({"*"}), None)
    assert allowed_host(None, frozenset(), None)  # HTTP/1.0 without Host: not a browser


async def test_the_bound_name_is_accepted(services: Services):
    async for live in live_api(services, token="", bind_host="mschat.lan"):
        ok = await live.client.get("/healthz", headers={"Host": "mschat.lan:5000"})
        assert ok.status_code == 200
        other = await live.client.get("/healthz", headers={"Host": "other.lan"})
        assert other.status_code == 421


async def test_an_origin_not_configured_is_403_before_auth(guarded: LiveApi):
    client = guarded.client
    for origin in ("https://evil.example", "null", "https://chat.example.org.evil.example"):
        anonymous = await client.post("/chat", json=CHAT, headers={"Origin": origin})
        assert anonymous.status_code == 403  # not 401: refused before the token is looked at
        error = anonymous.json()["error"]
        assert error["code"] == "origin_not_allowed" and error["param"] == "Origin"
        assert error["type"] == "permission_error"
        with_token = await client.post("/chat", json=CHAT, headers={**AUTH, "Origin": origin})
        assert with_token.status_code == 403
        assert "access-control-allow-origin" not in with_token.headers
    assert await guarded.services.manager.find_existing_user("api", "gus") is None
    allowed = await client.post(
        "/chat", json=CHAT, headers={**AUTH, "Origin": "https://chat.example.org"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example.org"


async def test_a_body_that_is_not_json_is_415(guarded: LiveApi):
    client = guarded.client
    body = json.dumps(CHAT)
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ):
        response = await client.post(
            "/chat", content=body, headers={**AUTH, "Content-Type": content_type}
        )
        assert response.status_code == 415, content_type
        error = response.json()["error"]
        assert error["code"] == "unsupported_media_type" and error["param"] == "Content-Type"
    # no Content-Type at all, on every method that takes a body
    for method, path in (
        ("POST", "/chat"),
        ("POST", "/v1/chat/completions"),
        ("PATCH", "/users/gus"),
        ("PATCH", "/sessions/1"),
        ("DELETE", "/sessions/1"),
        ("PUT", "/chat"),
    ):
        status, headers, payload = await raw_request(
            guarded.url,
            request_head(
                method,
                path,
                "Host: localhost",
                f"Authorization: Bearer {TOKEN}",
                f"Content-Length: {len(body)}",
            ),
            body.encode(),
        )
        assert_json_error(status, headers, payload, 415)
    assert await guarded.services.manager.find_existing_user("api", "gus") is None
    # JSON with parameters is JSON; a DELETE without a body needs no type
    ok = await client.post(
        "/chat",
        content=body,
        headers={**AUTH, "Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert ok.status_code == 200
    deleted = await client.delete(
        f"/sessions/{ok.json()['session_id']}", params={"user": "gus"}, headers=AUTH
    )
    assert deleted.status_code == 200


async def test_checks_come_in_order(guarded: LiveApi):
    """421 (Host), then 403 (Origin), then 401 (token), then 415 (body type)."""
    port = guarded.url.rsplit(":", 1)[1]
    right = {
        "Host": f"Host: localhost:{port}",
        "Origin": "Origin: https://chat.example.org",
        "Authorization": f"Authorization: Bearer {TOKEN}",
        "Content-Type": "Content-Type: application/json",
    }
    wrong = {
        "Host": "Host: evil.example",
        "Origin": "Origin: https://evil.example",
        "Authorization": "Authorization: Bearer wrong",
        "Content-Type": "Content-Type: text/plain",
    }
    for index, expected in enumerate([421, 403, 401, 415, 200]):
        names = list(right)
        headers = [right[n] for n in names[:index]] + [wrong[n] for n in names[index:]]
        body = json.dumps(CHAT).encode()
        head = request_head("POST", "/chat", *headers, f"Content-Length: {len(body)}")
        status, answer_headers, payload = await raw_request(guarded.url, head, body)
        if expected == 200:
            assert status == 200, payload
        else:
            assert_json_error(status, answer_headers, payload, expected)


async def test_oversized_urls_and_headers_get_the_json_error_shape(guarded: LiveApi):
    long_url = "/users/" + "a" * 9000
    status, headers, payload = await raw_request(
        guarded.url, request_head("GET", long_url, "Host: localhost")
    )
    error = assert_json_error(status, headers, payload, 414)
    assert error["code"] == "uri_too_long" and "aaaa" not in error["message"]
    status, headers, payload = await raw_request(
        guarded.url, request_head("GET", "/healthz", "Host: localhost", "X-Big: " + "b" * 9000)
    )
    error = assert_json_error(status, headers, payload, 431)
    assert error["code"] == "header_too_large" and "bbbb" not in error["message"]
    many = [f"X-Header-{n}: {n}" for n in range(200)]
    status, headers, payload = await raw_request(
        guarded.url, request_head("GET", "/healthz", "Host: localhost", *many)
    )
    assert assert_json_error(status, headers, payload, 431)["code"] == "too_many_headers"
    status, headers, payload = await raw_request(guarded.url, b"NOT HTTP AT ALL\r\n")
    assert assert_json_error(status, headers, payload, 400)["code"] == "bad_http_request"
    # the server is still fine
    assert (await guarded.client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        b"Host: \xff\xfe\x1b[2J",
        b"Origin: \xff\x00evil",
        b"X-Mschat-Session: \xff\xfe",
        b"X-Mschat-Session: 99999999999999999999999999",
        b"Idempotency-Key: \xe2\x98\x83 snowman",
        b"Idempotency-Key: " + b"k" * 300,
        b"Authorization: Bearer \xff\xfe",
        b"Content-Type: application/json; charset=\xff",
    ],
)
async def test_hostile_header_values_never_cause_a_server_error(guarded: LiveApi, header: bytes):
    body = json.dumps(
        {"model": "fake/fake-model", "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    name = header.split(b":", 1)[0].decode()
    usual = {
        "Host": "Host: localhost",
        "Content-Type": "Content-Type: application/json",
        "Authorization": f"Authorization: Bearer {TOKEN}",
    }
    usual.pop(name, None)
    head = request_head(
        "POST",
        "/v1/chat/completions",
        *usual.values(),
        f"Content-Length: {len(body)}",
        header,
    )
    status, headers, payload = await raw_request(guarded.url, head, body)
    assert status < 500, payload[:300]
    if status >= 400:
        assert_json_error(status, headers, payload, status)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/%ff%fe%1b[2J", 404),
        ("/users/%ed%a0%bd", 404),
        ("/users/%00", 400),
        ("/sessions/%ff?user=%ff", 400),
        ("/users/a/sessions?limit=%ff&offset=-1", 400),
    ],
)
async def test_hostile_paths_and_queries_get_json_errors(guarded: LiveApi, path: str, status: int):
    head = request_head("GET", path, "Host: localhost", f"Authorization: Bearer {TOKEN}")
    got, headers, payload = await raw_request(guarded.url, head)
    assert_json_error(got, headers, payload, status)


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        ("Transfer-Encoding: chunked", b"zz\r\nnot a chunk\r\n0\r\n\r\n"),
        ("Content-Encoding: gzip", b"this is not gzip"),
        ("Content-Encoding: deflate", b"\x00\x01garbage"),
        ("Content-Encoding: br", b"not brotli"),
        ("Content-Encoding: zstd", b"not zstd"),
        ("Content-Encoding: gzip", gzip.compress(b" " * 50_000_000)),  # a bomb: 413
    ],
)
async def test_broken_bodies_are_4xx_json(guarded: LiveApi, framing: str, body: bytes):
    head = request_head(
        "POST",
        "/chat",
        "Host: localhost",
        f"Authorization: Bearer {TOKEN}",
        "Content-Type: application/json",
        framing,
        *([] if "chunked" in framing else [f"Content-Length: {len(body)}"]),
    )
    status, headers, payload = await raw_request(guarded.url, head, body)
    assert 400 <= status < 500, payload
    assert_json_error(status, headers, payload, status)
