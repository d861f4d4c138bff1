"""The API adapts the core: the core's model list, its refusals and its events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from mschat.core import eligibility
from mschat.core.errors import ChatDisabled
from mschat.core.events import Event, WaitingForTurn
from mschat.core.models import User
from mschat.providers.base import ModelInfo
from tests.api.conftest import LiveApi, sse_events, sse_json


async def test_v1_models_lists_the_cores_one_list(api: LiveApi, monkeypatch: pytest.MonkeyPatch):
    manager = api.services.manager

    async def every_model(*, refresh: bool = False) -> list[ModelInfo]:
        return [
            ModelInfo(name="fake/other", provider="fake", model="other"),
            ModelInfo(name="fake/discovered", provider="fake", model="discovered"),
            ModelInfo(name="fake/fake-model", provider="fake", model="fake-model"),
        ]

    monkeypatch.setattr(manager, "list_models", every_model)
    listed = (await api.client.get("/v1/models")).json()
    assert [m["id"] for m in listed["data"]] == ["fake/fake-model", "fake/other", "fake/discovered"]
    assert listed["data"][1] == {
        "id": "fake/other",
        "object": "model",
        "created": 0,
        "owned_by": "fake",
    }


async def test_the_cores_refusal_is_what_every_ask_endpoint_answers(
    api: LiveApi, monkeypatch: pytest.MonkeyPatch
):
    """No copy of the rule in the API: whatever the core's check refuses, every chat
    endpoint refuses, as the core's error translated once."""

    def refuse_zoe(user: User) -> None:
        if user.external_id == "zoe":
            raise ChatDisabled("zoe may not chat today")

    monkeypatch.setattr(eligibility, "check_may_route", refuse_zoe)
    v1 = {"user": "zoe", "messages": [{"role": "user", "content": "hi"}]}
    for path, body in [
        ("/chat", {"message": "hi", "user": "zoe"}),
        ("/chat", {"message": "hi", "user": "zoe", "session": 1}),
        ("/chat-stream", {"message": "hi", "user": "zoe"}),
        ("/v1/chat/completions", v1),
    ]:
        response = await api.client.post(path, json=body)
        assert response.status_code == 403, path
        error = response.json()["error"]
        assert error["code"] == "user_disabled" and error["message"] == "zoe may not chat today"
    assert (await api.client.post("/chat", json={"message": "hi", "user": "amy"})).is_success
    assert api.services.store.conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1


def wait_first(api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ask first waits for its turn, as behind another process's answer."""
    manager = api.services.manager
    original = manager.ask

    async def ask(user: User, text: str, **options: Any) -> AsyncIterator[Event]:
        yield WaitingForTurn(session_id=options.get("session_id") or 0)
        async for event in original(user, text, **options):
            yield event

    monkeypatch.setattr(manager, "ask", ask)


async def test_waiting_for_a_turn_is_an_sse_comment_never_an_error(
    api: LiveApi, monkeypatch: pytest.MonkeyPatch
):
    wait_first(api, monkeypatch)
    asked = await api.client.post("/chat", json={"message": "plain", "user": "wes"})
    assert asked.status_code == 200 and asked.json()["response"] == "Echo: plain"
    session = asked.json()["session_id"]
    body = {"message": "streamed", "user": "wes", "session": session}
    streamed = (await api.client.post("/chat-stream", json=body)).text
    assert streamed.startswith(": waiting for another answer in this session to finish\n\n")
    assert [name for name, _ in sse_json(streamed)] == ["start", "delta", "delta", "done"]
    v1 = {"messages": [{"role": "user", "content": "v1"}], "stream": True, "user": "wes"}
    chunks = await api.client.post(
        "/v1/chat/completions", json=v1, headers={"X-Mschat-Session": str(session)}
    )
    assert ": waiting for another answer" in chunks.text
    data = [json.loads(d) for _, d in sse_events(chunks.text) if d and d != "[DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in data) == "Echo: v1"


async def test_the_sdk_reads_a_stream_that_waited(api: LiveApi, monkeypatch: pytest.MonkeyPatch):
    wait_first(api, monkeypatch)
    client = openai.AsyncOpenAI(base_url=f"{api.url}/v1", api_key="none", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="fake/fake-model", messages=[{"role": "user", "content": "sdk"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        await client.close()
    assert text == "Echo: sdk"


async def test_text_that_is_not_valid_unicode_still_answers_json(api: LiveApi):
    """Half an emoji (a lone surrogate escape) in a body is refused in valid JSON."""
    raw = b'{"\\ud83d": 1, "title": "x"}'
    response = await api.client.post(
        "/users/una/sessions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = json.loads(response.content)["error"]
    assert error["param"] == "body" and "UTF-8" in error["message"]
    message = await api.client.post(
        "/chat",
        content=b'{"message": "\\ud83d", "user": "una"}',
        headers={"Content-Type": "application/json"},
    )
    assert message.status_code == 400 and message.json()["error"]["param"] == "message"
