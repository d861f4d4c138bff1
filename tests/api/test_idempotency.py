"""Idempotency-Key on /chat, /chat-stream and /v1/chat/completions: a retry is answered
once, with the first answer, and stores nothing twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mschat.core.errors import ProviderError
from tests.api.conftest import LiveApi, sse_json
from tests.conftest import eventually
from tests.fakes.scripted_provider import ScriptedProvider

V1 = "/v1/chat/completions"


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def v1_body(text: str, **extra: object) -> dict:
    return {
        "model": "fake/fake-model",
        "user": "ivy",
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def stored(api: LiveApi, name: str) -> list[tuple[int, str, str]]:
    """(session id, role, content) of every message of a user's sessions."""
    rows = api.services.store.conn.execute(
        "SELECT m.session_id, m.role, m.content FROM messages m "
        "JOIN sessions s ON s.id = m.session_id JOIN users u ON u.id = s.creator_id "
        "WHERE u.external_id = ? ORDER BY m.id",
        [name],
    )
    return [tuple(row) for row in rows]


async def test_chat_retry_gets_the_first_answer(api: LiveApi, provider: ScriptedProvider):
    body = {"message": "only once", "user": "ivy"}
    first = await api.client.post("/chat", json=body, headers=key("k-1"))
    again = await api.client.post("/chat", json=body, headers=key("k-1"))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(provider.requests) == 1
    session = first.json()["session_id"]
    assert await stored(api, "ivy") == [
        (session, "user", "only once"),
        (session, "assistant", "Echo: only once"),
    ]
    # without a key, or with another, the same body is a new question
    other = await api.client.post("/chat", json=body, headers=key("k-2"))
    assert other.json()["message_id"] != first.json()["message_id"]
    assert len(provider.requests) == 2


async def test_chat_stream_retry_is_the_whole_reply_replayed(
    api: LiveApi, provider: ScriptedProvider
):
    provider.push(chunks=["one ", "two ", "three"])
    body = {"message": "stream it", "user": "ivy"}
    first = sse_json((await api.client.post("/chat-stream", json=body, headers=key("s"))).text)
    again = sse_json((await api.client.post("/chat-stream", json=body, headers=key("s"))).text)
    assert [name for name, _ in first] == ["start", "delta", "delta", "delta", "done"]
    assert [name for name, _ in again] == ["start", "delta", "done"]
    assert again[0] == first[0] and again[-1] == first[-1]
    assert again[1][1] == {"text": "one two three"}
    assert len(provider.requests) == 1


async def test_v1_retry_same_completion_same_session(api: LiveApi, provider: ScriptedProvider):
    first = await api.client.post(V1, json=v1_body("hello v1"), headers=key("v"))
    again = await api.client.post(V1, json=v1_body("hello v1"), headers=key("v"))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()  # same id, same created, same text
    assert again.headers["X-Mschat-Session"] == first.headers["X-Mschat-Session"]
    assert len(provider.requests) == 1
    assert len(await stored(api, "ivy")) == 2

    streamed = v1_body("stream v1", stream=True, stream_options={"include_usage": True})
    live = sse_json((await api.client.post(V1, json=streamed, headers=key("vs"))).text)
    replay = sse_json((await api.client.post(V1, json=streamed, headers=key("vs"))).text)
    assert replay[-1] == (None, "[DONE]") and live[-1] == (None, "[DONE]")
    chunks = [data for _, data in replay[:-1]]
    assert {chunk["id"] for chunk in chunks} == {live[0][1]["id"]}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Echo: stream v1"
    assert chunks[-1]["usage"] == live[-2][1]["usage"]
    assert len(provider.requests) == 2


def count_claims(api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether each claim of a key got it (True) or found it taken (False)."""
    store = api.services.store
    claims: list[bool] = []
    original = store.claim_idempotency_key

    def counting(**values: object) -> tuple[bool, dict]:
        claimed, row = original(**values)  # type: ignore[arg-type]
        claims.append(claimed)
        return claimed, row

    monkeypatch.setattr(store, "claim_idempotency_key", counting)
    return claims


async def test_a_retry_while_the_first_runs_waits_for_it(
    api: LiveApi, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
):
    claims = count_claims(api, monkeypatch)
    gate = asyncio.Event()
    provider.push(chunks=["slow ", "answer"], gate=gate)
    body = {"message": "take your time", "user": "ivy"}
    first = asyncio.create_task(api.client.post("/chat", json=body, headers=key("w")))
    await eventually(lambda: provider.requests)
    retry = asyncio.create_task(api.client.post("/chat", json=body, headers=key("w")))
    await eventually(lambda: claims[:2] == [True, False])  # the retry found the key running
    # the same key with another request is refused at once, even while the first runs
    refused = await api.client.post(
        "/chat-stream", json={**body, "message": "other"}, headers=key("w")
    )
    assert refused.status_code == 422
    assert not retry.done()
    gate.set()
    one, two = await asyncio.gather(first, retry)
    assert one.json() == two.json() and one.json()["response"] == "slow answer"
    assert len(provider.requests) == 1


async def test_a_streamed_retry_while_the_first_runs_gets_the_replay(
    api: LiveApi, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
):
    claims = count_claims(api, monkeypatch)
    gate = asyncio.Event()
    provider.push(chunks=["part one, ", "part two"], gate=gate)
    body = {"message": "long story", "user": "ivy"}

    async def stream() -> list:
        response = await api.client.post("/chat-stream", json=body, headers=key("ws"))
        return sse_json(response.text)

    first = asyncio.create_task(stream())
    await eventually(lambda: provider.requests)
    retry = asyncio.create_task(stream())
    await eventually(lambda: claims[:2] == [True, False])
    gate.set()
    live, replay = await asyncio.gather(first, retry)
    assert live[-1] == replay[-1] and live[-1][1]["response"] == "part one, part two"
    assert replay[1] == ("delta", {"text": "part one, part two"})
    assert len(provider.requests) == 1


async def test_same_key_another_body_is_422(api: LiveApi):
    await api.client.post("/chat", json={"message": "a", "user": "ivy"}, headers=key("x"))
    other = await api.client.post("/chat", json={"message": "b", "user": "ivy"}, headers=key("x"))
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused" and error["type"] == "invalid_request_error"
    elsewhere = await api.client.post(V1, json=v1_body("a"), headers=key("x"))
    assert elsewhere.status_code == 422
    # keys belong to their user: another user may use the same one
    bob = await api.client.post("/chat", json={"message": "b", "user": "bob"}, headers=key("x"))
    assert bob.status_code == 200


async def test_keys_older_than_a_day_are_forgotten(api: LiveApi, provider: ScriptedProvider):
    body = {"message": "yesterday", "user": "ivy"}
    first = (await api.client.post("/chat", json=body, headers=key("old"))).json()
    day_ago = (datetime.now(UTC) - timedelta(hours=24, minutes=1)).isoformat()
    with api.services.store.write() as conn:
        conn.execute("UPDATE idempotency_keys SET created = ?", [day_ago])
    again = (await api.client.post("/chat", json=body, headers=key("old"))).json()
    assert again["message_id"] != first["message_id"]
    assert len(provider.requests) == 2
    count = api.services.store.conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()
    assert count[0] == 1  # the old one was purged


async def test_a_refusal_keeps_no_record_so_the_retry_runs(api: LiveApi):
    manager = api.services.manager
    admin = await manager.local_user()
    ivy = await manager.user("api", "ivy")
    await manager.update_user(admin, ivy.id, rate_limit=0)
    body = {"message": "let me in", "user": "ivy"}
    refused = await api.client.post("/chat", json=body, headers=key("r"))
    assert refused.status_code == 429
    await manager.update_user(admin, ivy.id, rate_limit=None)
    retried = await api.client.post("/chat", json=body, headers=key("r"))
    assert retried.status_code == 200


async def test_a_failed_answer_is_replayed_not_asked_again(
    api: LiveApi, provider: ScriptedProvider
):
    provider.push(chunks=["half"], error=ProviderError("upstream down", kind="server"))
    body = {"message": "fragile", "user": "ivy"}
    first = await api.client.post("/chat", json=body, headers=key("f"))
    again = await api.client.post("/chat", json=body, headers=key("f"))
    assert first.status_code == again.status_code == 502
    assert again.json() == first.json() and first.json()["response"] == "half"
    assert first.headers["x-should-retry"] == "false"
    assert len(provider.requests) == 1 and len(await stored(api, "ivy")) == 2


@pytest.mark.parametrize("value", ["", "has space", "ü-umlaut", "k" * 256])
async def test_a_bad_key_is_400_naming_the_header(api: LiveApi, value: str):
    response = await api.client.post(
        "/chat",
        json={"message": "hi", "user": "ivy"},
        headers={"Idempotency-Key": value.encode()},
    )
    if value == "":
        assert response.status_code == 200  # an empty header is no key
        return
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"
