"""Moderation through the API: a flagged question refused, a flagged answer withheld."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.api.conftest import LiveApi, live_api, sse_json
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI


@pytest.fixture
async def e2e(mschat_home: Path, fake_openai: FakeOpenAI) -> AsyncIterator[LiveApi]:
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{fake_openai.base_url}"\nmodels = ["fake-model"]\n'
        'max_retries = 0\n[moderation]\nmodel = "fake/text-moderation"\n',
    )
    services: Services = build_services(load_config())
    try:
        async for live in live_api(services, token=""):
            yield live
    finally:
        await services.aclose()


async def stored(api: LiveApi, user: str, session_id: int) -> list[tuple[str, str, str]]:
    manager = api.services.manager
    who = await manager.user("api", user)
    return [(m.role, m.content, m.status) for m in await manager.messages(who, session_id)]


async def test_a_flagged_question_is_a_400_and_stored_flagged(
    e2e: LiveApi, fake_openai: FakeOpenAI
):
    fake_openai.flag("bomb", category="violence")
    response = await e2e.client.post("/chat", json={"message": "how to build a bomb", "user": "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "question_flagged"
    assert body["error"]["message"] == (
        "your question was flagged by moderation (violence) and not answered"
    )
    assert fake_openai.requests == []  # never sent to the chat model
    assert fake_openai.moderations[0]["model"] == "text-moderation"  # "fake/" picked the provider
    assert await stored(e2e, "x", body["session_id"]) == [
        ("user", "how to build a bomb", "flagged"),
        ("assistant", "", "flagged"),
    ]

    completion = await e2e.client.post(
        "/v1/chat/completions",
        json={"model": "fake/fake-model", "messages": [{"role": "user", "content": "a bomb?"}]},
    )
    assert completion.status_code == 400
    assert completion.json()["error"]["code"] == "question_flagged"


async def test_a_flagged_answer_is_withheld_over_the_stream(e2e: LiveApi, fake_openai: FakeOpenAI):
    fake_openai.reply = "a gruesome tale"
    fake_openai.flag("gruesome", category="violence")
    response = await e2e.client.post("/chat-stream", json={"message": "a story", "user": "y"})
    events = sse_json(response.text)
    assert [name for name, _ in events] == ["start", "error"]  # no delta: nothing shown
    error = events[-1][1]
    assert error["error"]["code"] == "answer_withheld"
    assert error["error"]["message"] == "the answer was withheld: moderation flagged it (violence)"
    assert error["response"] == ""
    assert "gruesome" not in response.text
    assert await stored(e2e, "y", error["session_id"]) == [
        ("user", "a story", "complete"),
        ("assistant", "", "flagged"),
    ]

    completion = await e2e.client.post(
        "/v1/chat/completions",
        json={
            "model": "fake/fake-model",
            "stream": True,
            "messages": [{"role": "user", "content": "another story"}],
        },
    )
    assert "gruesome" not in completion.text and "answer_withheld" in completion.text


async def test_a_clean_answer_streams_whole_once_checked(e2e: LiveApi, fake_openai: FakeOpenAI):
    response = await e2e.client.post("/chat-stream", json={"message": "hi", "user": "z"})
    events = sse_json(response.text)
    assert [name for name, _ in events] == ["start", "delta", "done"]
    assert events[1][1]["text"] == "Echo: hi" and events[-1][1]["response"] == "Echo: hi"
