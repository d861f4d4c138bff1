"""Servers that are not quite OpenAI-compatible: half emojis, bad bytes, wrong shapes.

Text a server garbles is kept (U+FFFD marks the damage) and the reply completes;
an answer that is not OpenAI-compatible at all is one clear error naming the
server, and the user's question stays stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mschat.core.errors import ProviderError
from mschat.core.events import Completed, Event, Failed, TextDelta
from mschat.providers.base import ChatMessage, ChatRequest, FinishChunk, TextChunk
from tests.fakes.fake_openai import FakeOpenAI
from tests.providers.conftest import MakeProvider, fake_services, rows

REQUEST = ChatRequest(model="fake-model", messages=(ChatMessage("user", "hello there"),))
NOT_COMPATIBLE = "did not answer like an OpenAI-compatible one"


async def stream(make: MakeProvider) -> tuple[str, list[Any]]:
    events = [event async for event in make().stream_chat(REQUEST)]
    return "".join(e.text for e in events if isinstance(e, TextChunk)), events


async def refused(make: MakeProvider, fake: FakeOpenAI) -> ProviderError:
    """The error of a stream that must fail at once, without a retry."""
    with pytest.raises(ProviderError) as info:
        async for _ in make().stream_chat(REQUEST):
            pass
    error = info.value
    assert error.kind == "bad_response" and not error.retryable
    assert len(fake.requests) == 1  # a server that speaks another protocol is not retried
    line = str(error)
    assert "\n" not in line and NOT_COMPATIBLE in line and fake.base_url in line
    return error


def sse(*events: Any) -> bytes:
    """An event-stream body with these JSON events (or raw strings), then [DONE]."""
    data = [e if isinstance(e, bytes) else json.dumps(e).encode() for e in events]
    return b"".join(b"data: " + d + b"\n\n" for d in data) + b"data: [DONE]\n\n"


def delta(content: Any, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


# ---- garbled text is kept --------------------------------------------------------------


async def test_a_lone_surrogate_becomes_a_replacement_character(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.inject("surrogate", after_chunks=1)
    text, events = await stream(make)
    assert text == "Echo\ufffd: hello there"
    text.encode("utf-8")  # encodable: terminals and SQLite accept it
    assert events[-1] == FinishChunk("stop")


async def test_a_surrogate_pair_split_across_chunks_is_joined(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    body = sse(
        b'{"choices":[{"delta":{"content":"smile \\ud83d"}}]}',
        b'{"choices":[{"delta":{"content":"\\ude00!"}}]}',
        b'{"choices":[{"delta":{"content":"\\ud83d"}}]}',
        delta(None, "stop"),
    )
    fake.inject("raw", raw=body, content_type="text/event-stream")
    text, events = await stream(make)
    assert text == "smile \U0001f600!\ufffd"  # the last half never found its pair
    assert events[-1] == FinishChunk("stop")


async def test_invalid_utf8_becomes_replacement_characters(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.inject("bad_utf8", after_chunks=1)
    text, events = await stream(make)
    assert text == "Echocaf\ufffd \ufffd!: hello there"
    assert events[-1] == FinishChunk("stop")


async def test_a_non_streaming_answer_with_bad_bytes_is_kept(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    body = b'{"choices":[{"message":{"content":"ol\xe9 \\ud83d"},"finish_reason":"stop"}]}'
    fake.inject("raw", raw=body, content_type="application/json")
    text, events = await stream(make)
    assert text == "ol\ufffd \ufffd" and events[-1] == FinishChunk("stop")


# ---- answers that are not OpenAI-compatible ------------------------------------------------


@pytest.mark.parametrize(
    "content, kind", [(42, "a number"), ({"text": "hi"}, "an object"), (["hi"], "a list")]
)
async def test_delta_content_that_is_not_a_string(
    fake: FakeOpenAI, make: MakeProvider, content: Any, kind: str
) -> None:
    fake.inject("bad_content", content=content, after_chunks=1)
    error = await refused(make, fake)
    assert f"delta.content is {kind}, not a string" in str(error)


async def test_an_html_page_with_status_200(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("html")
    error = await refused(make, fake)
    assert "web page" in str(error) and "base_url" in str(error)


@pytest.mark.parametrize(
    "event", [42, {"message": "hello"}, [1, 2], "just a string", {"choices": "none"}]
)
async def test_json_that_is_not_a_chunk(fake: FakeOpenAI, make: MakeProvider, event: Any) -> None:
    fake.inject("not_a_chunk", content=event, after_chunks=0)
    await refused(make, fake)


async def test_event_data_that_is_not_json(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("raw", raw=b"data: hello\n\n", content_type="text/event-stream")
    error = await refused(make, fake)
    assert "not JSON" in str(error)


async def test_a_plain_text_answer(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("raw", raw=b"Hello from a web server\n", content_type="text/plain")
    error = await refused(make, fake)
    assert "text/plain, not an event stream" in str(error)


async def test_a_model_list_that_is_not_one(fake: FakeOpenAI, make: MakeProvider) -> None:
    import asyncio

    fake.models = []
    provider = make()
    assert await asyncio.to_thread(provider.served_models) == {}
    fake.serve_models = False
    with pytest.raises(ProviderError, match="no /models endpoint"):
        await asyncio.to_thread(provider.served_models)


# ---- end to end: what the core stores ------------------------------------------------------


async def ask(services: Any, text: str) -> list[Event]:
    me = await services.manager.local_user()
    return [event async for event in services.manager.ask(me, text, new_session=True)]


async def test_stored_replies_keep_garbled_text_and_failures_keep_the_question(
    fake: FakeOpenAI, mschat_home: Path
) -> None:
    services = fake_services(mschat_home, fake.base_url)
    try:
        fake.inject("surrogate", after_chunks=1)
        events = await ask(services, "half an emoji please")
        assert isinstance(events[-1], Completed)
        streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert streamed == "Echo\ufffd: half an emoji please"

        fake.inject("bad_content", content={"text": "x"}, after_chunks=1)
        events = await ask(services, "and now a broken server")
        failed = events[-1]
        assert isinstance(failed, Failed) and NOT_COMPATIBLE in str(failed.error)
    finally:
        await services.aclose()

    db = services.config.db
    messages = rows(db, "SELECT role, content, status, error FROM messages ORDER BY id")
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "failed"),
    ]
    assert messages[1]["content"] == "Echo\ufffd: half an emoji please"
    assert messages[2]["content"] == "and now a broken server"
    assert messages[3]["content"] == "Echo"  # what arrived before the broken chunk
    assert NOT_COMPATIBLE in messages[3]["error"] and fake.base_url in messages[3]["error"]
    calls = rows(db, "SELECT status, error FROM api_calls ORDER BY id")
    assert [c["status"] for c in calls] == ["ok", "error"]
    assert calls[1]["error"] == messages[3]["error"]
