"""The ChatGPT-MS /chat and /chat-stream over a real socket."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from mschat.core.errors import ProviderError
from mschat.core.models import Status
from tests.api.conftest import LiveApi, sse_json
from tests.fakes.scripted_provider import ScriptedProvider

SEED_BODY = '{"message":"Who are you?", "user": "shiyemin"}'


async def _raw_post(url: str, path: str, body: str) -> tuple[int, dict]:
    """The README's curl request on a plain socket (when curl is not installed)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    data = body.encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


async def test_the_readmes_curl_request(api: LiveApi):
    curl = shutil.which("curl")
    if curl:
        process = await asyncio.create_subprocess_exec(
            curl,
            "-s",
            "-d",
            SEED_BODY,
            "-H",
            "Content-Type: application/json",
            "-X",
            "POST",
            f"{api.url}/chat",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0
        body = json.loads(out)
    else:
        status, body = await _raw_post(api.url, "/chat", SEED_BODY)
        assert status == 200
    assert body["response"] == "Echo: Who are you?"
    assert isinstance(body["session_id"], int)
    assert body["usage"]["completion_tokens"] == 2
    # the user is a persistent mschat user of kind api, active, in that session
    manager = api.services.manager
    user = await manager.user("api", "shiyemin")
    assert user.status == Status.ACTIVE and user.current_session_id == body["session_id"]
    messages = await manager.messages(user, body["session_id"])
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "Who are you?", "complete"),
        ("assistant", "Echo: Who are you?", "complete"),
    ]


async def test_chat_continues_then_reset_starts_a_new_session(api: LiveApi):
    first = (await api.client.post("/chat", json={"message": "one", "user": "bob"})).json()
    second = (await api.client.post("/chat", json={"message": "two", "user": "bob"})).json()
    assert second["session_id"] == first["session_id"]
    reset = await api.client.post("/chat", json={"message": "reset", "user": "bob"})
    assert reset.status_code == 200
    body = reset.json()
    assert body["reset"] is True and "new session" in body["response"].lower()
    assert body["session_id"] != first["session_id"]
    third = (await api.client.post("/chat", json={"message": "three", "user": "bob"})).json()
    assert third["session_id"] == body["session_id"]
    manager = api.services.manager
    bob = await manager.user("api", "bob")
    old = await manager.messages(bob, first["session_id"])
    new = await manager.messages(bob, third["session_id"])
    assert [m.content for m in old if m.role == "user"] == ["one", "two"]
    assert [m.content for m in new if m.role == "user"] == ["three"]
    # the provider saw the session's history for the second question, not for the third
    provider: ScriptedProvider = api.services.registry.provider("fake")  # type: ignore[assignment]
    assert [m.content for m in provider.requests[1].messages][-3:] == ["one", "Echo: one", "two"]
    assert [m.content for m in provider.requests[2].messages] == ["three"]


async def test_session_field_picks_one_of_the_users_sessions(api: LiveApi):
    client = api.client
    a = (await client.post("/chat", json={"message": "in a", "user": "carol"})).json()
    await client.post("/chat", json={"message": "reset", "user": "carol"})
    b = (await client.post("/chat", json={"message": "in b", "user": "carol"})).json()
    assert a["session_id"] != b["session_id"]
    picked = await client.post(
        "/chat", json={"message": "back to a", "user": "carol", "session": a["session_id"]}
    )
    assert picked.status_code == 200 and picked.json()["session_id"] == a["session_id"]
    # a digit string works too (bridges often send text)
    again = await client.post(
        "/chat", json={"message": "a again", "user": "carol", "session": str(a["session_id"])}
    )
    assert again.json()["session_id"] == a["session_id"]
    # another user's private session is refused, a missing one is not found
    other = await client.post(
        "/chat", json={"message": "peek", "user": "mallory", "session": a["session_id"]}
    )
    assert other.status_code == 403
    assert other.json()["error"]["param"] == "session"
    missing = await client.post("/chat", json={"message": "x", "user": "carol", "session": 999})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    carol = await api.services.manager.user("api", "carol")
    assert [
        m.content
        for m in await api.services.manager.messages(carol, a["session_id"])
        if m.role == "user"
    ] == ["in a", "back to a", "a again"]


async def test_disabled_user_gets_a_clear_403_and_nothing_is_stored(api: LiveApi):
    manager = api.services.manager
    dave = await manager.user("api", "dave")
    await manager.update_user(dave, dave.id, status="disabled")
    response = await api.client.post("/chat", json={"message": "hello?", "user": "dave"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "user_disabled" and "disabled" in error["message"]
    stream = await api.client.post("/chat-stream", json={"message": "hello?", "user": "dave"})
    assert stream.status_code == 403
    assert await manager.list_sessions(dave) == []


async def test_chat_stream_sends_start_deltas_and_done(api: LiveApi, provider: ScriptedProvider):
    provider.push(chunks=["Hel", "lo ", "there"])
    async with api.client.stream(
        "POST", "/chat-stream", json={"message": "hi", "user": "erin"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = (await response.aread()).decode()
    events = sse_json(body)
    names = [name for name, _ in events]
    assert names == ["start", "delta", "delta", "delta", "done"]
    assert [data["text"] for name, data in events if name == "delta"] == ["Hel", "lo ", "there"]
    start, done = events[0][1], events[-1][1]
    assert done["session_id"] == start["session_id"] and start["created_session"] is True
    assert done["response"] == "Hello there"
    assert done["usage"]["completion_tokens"] == 3
    erin = await api.services.manager.user("api", "erin")
    stored = await api.services.manager.messages(erin, done["session_id"])
    assert stored[-1].content == "Hello there" and stored[-1].status == "complete"


async def test_chat_stream_reports_provider_failure_as_an_error_event(
    api: LiveApi, provider: ScriptedProvider
):
    provider.push(chunks=["partial"], error=ProviderError("upstream broke", kind="server"))
    response = await api.client.post("/chat-stream", json={"message": "hi", "user": "fay"})
    events = sse_json(response.text)
    assert [name for name, _ in events] == ["start", "delta", "error"]
    error = events[-1][1]
    assert "upstream broke" in error["error"]["message"]
    assert error["session_id"] == events[0][1]["session_id"] and error["response"] == "partial"
    # nothing lost: the question and the partial reply are stored
    fay = await api.services.manager.user("api", "fay")
    stored = await api.services.manager.messages(fay, error["session_id"])
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "failed")]


async def test_chat_provider_failure_is_a_502_with_the_session(
    api: LiveApi, provider: ScriptedProvider
):
    provider.push(chunks=[], error=ProviderError("down", kind="unreachable"))
    response = await api.client.post("/chat", json={"message": "hi", "user": "gil"})
    assert response.status_code == 502
    body = response.json()
    assert body["error"]["code"] == "unreachable" and body["error"]["type"] == "api_error"
    assert isinstance(body["session_id"], int)


async def test_reset_over_the_stream(api: LiveApi):
    response = await api.client.post("/chat-stream", json={"message": "reset", "user": "hal"})
    events = sse_json(response.text)
    assert [name for name, _ in events] == ["start", "delta", "done"]
    assert events[-1][1]["reset"] is True


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"user": "x"}, "message"),
        ({"message": "hi"}, "user"),
        ({"message": "   ", "user": "x"}, "message"),
        ({"message": 5, "user": "x"}, "message"),
        ({"message": "hi", "user": ["x"]}, "user"),
        ({"message": "hi", "user": "x", "session": "abc"}, "session"),
        ({"message": "hi", "user": "x", "session": 0}, "session"),
        ({"message": "hi", "user": "x", "session": 2**70}, "session"),
    ],
)
async def test_invalid_fields_are_400_naming_the_field(api: LiveApi, body: dict, param: str):
    for path in ("/chat", "/chat-stream"):
        response = await api.client.post(path, json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
        assert param in error["message"]


async def test_rate_limited_user_gets_429_and_nothing_is_stored(api: LiveApi):
    manager = api.services.manager
    admin = await manager.local_user()
    limited = await manager.user("api", "limited")
    await manager.update_user(admin, limited.id, rate_limit=0)
    chat = await api.client.post("/chat", json={"message": "hi", "user": "limited"})
    assert chat.status_code == 429 and chat.json()["error"]["type"] == "rate_limit_error"
    v1 = await api.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake/fake-model",
            "user": "limited",
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ],
        },
    )
    assert v1.status_code == 429 and "rate limit" in v1.json()["error"]["message"]
    assert await manager.list_sessions(await manager.user("api", "limited")) == []


async def test_a_reply_is_stored_complete_when_the_client_goes_away(
    api: LiveApi, provider: ScriptedProvider
):
    gate = asyncio.Event()
    provider.push(chunks=["first ", "second"], gate=gate)
    async with api.client.stream(
        "POST", "/chat-stream", json={"message": "go", "user": "quitter"}
    ) as response:
        async for line in response.aiter_lines():
            if "first" in line:
                break
    # the client has closed the connection; the reply carries on and is stored
    gate.set()
    manager = api.services.manager
    quitter = await manager.user("api", "quitter")
    async with asyncio.timeout(10):
        while True:
            sessions = await manager.list_sessions(quitter)
            stored = await manager.messages(quitter, sessions[0].id)
            if stored[-1].status != "streaming":
                break
            await manager.data_version()  # one store round trip between polls
    assert stored[-1].status == "complete" and stored[-1].content == "first second"
