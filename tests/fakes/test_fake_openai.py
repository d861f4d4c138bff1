"""The fake OpenAI server speaks the real protocol: the official SDK is its client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
import pytest_asyncio

from tests.fakes.fake_openai import FakeOpenAI, FakeOpenAIThread, chunk_text, fake_tokens

USER = [{"role": "user", "content": "hello there"}]
ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    """A started fake server."""
    async with FakeOpenAI() as server:
        yield server


@pytest_asyncio.fixture
async def sdk(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK pointed at the fake, without its own retries."""
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield client
    await client.close()


def sse_payloads(text: str) -> list[str]:
    """The data of every SSE event in a raw response body."""
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


async def test_sdk_streams_text_usage_and_finish_reason(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="fake-model", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "Echo: hello there"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == fake_tokens(text)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_sdk_non_streaming_completion(sdk: openai.AsyncOpenAI) -> None:
    reply = await sdk.chat.completions.create(model="fake-large", messages=USER)
    assert reply.object == "chat.completion"
    assert reply.model == "fake-large"
    assert reply.choices[0].message.content == "Echo: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0


async def test_sdk_lists_models(sdk: openai.AsyncOpenAI) -> None:
    models = await sdk.models.list()
    assert [m.id for m in models.data] == ["fake-model", "fake-large"]


async def test_sdk_sees_typed_errors(fake: FakeOpenAI, sdk: openai.AsyncOpenAI) -> None:
    fake.inject("429", retry_after_ms=50)
    with pytest.raises(openai.RateLimitError) as rate:
        await sdk.chat.completions.create(model="fake-model", messages=USER)
    assert rate.value.response.headers["retry-after-ms"] == "50"
    fake.inject("401")
    with pytest.raises(openai.AuthenticationError):
        await sdk.chat.completions.create(model="fake-model", messages=USER)
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(model="nope", messages=USER)
    assert missing.value.code == "model_not_found"
    fake.inject("context_length")
    with pytest.raises(openai.BadRequestError) as too_long:
        await sdk.chat.completions.create(model="fake-model", messages=USER)
    assert too_long.value.code == "context_length_exceeded"
    fake.inject("503")
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(model="fake-model", messages=USER)


async def test_stream_wire_format(fake: FakeOpenAI) -> None:
    body = {"model": "fake-model", "messages": USER, "stream": True}
    async with httpx.AsyncClient() as client:
        plain = await client.post(f"{fake.base_url}/chat/completions", json=body)
        body["stream_options"] = {"include_usage": True}
        with_usage = await client.post(f"{fake.base_url}/chat/completions", json=body)
    assert plain.headers["content-type"].startswith("text/event-stream")
    events = sse_payloads(plain.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    usage_chunks = [json.loads(e) for e in sse_payloads(with_usage.text)[:-1]]
    assert usage_chunks[-1]["choices"] == [] and usage_chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in usage_chunks[:-1])


async def test_scripts_and_body_overrides(fake: FakeOpenAI, sdk: openai.AsyncOpenAI) -> None:
    fake.push(reply="scripted", chunk_size=3)
    first = await sdk.chat.completions.create(model="fake-model", messages=USER)
    second = await sdk.chat.completions.create(
        model="fake-model", messages=USER, extra_body={"fake": {"reply_length": 50}}
    )
    third = await sdk.chat.completions.create(model="fake-model", messages=USER, max_tokens=2)
    assert first.choices[0].message.content == "scripted"
    assert len(second.choices[0].message.content or "") == 50
    assert third.choices[0].finish_reason == "length"
    assert third.choices[0].message.content == "Echo: he"
    assert len(fake.requests) == 3 and fake.requests[2]["max_tokens"] == 2


async def test_api_key_and_context_window(sdk: openai.AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError):
        await sdk.chat.completions.create(model="fake-model", messages=USER)
    fake.api_key = "sk-test"
    fake.context_window = 5
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(model="fake-model", messages=USER)
    assert fake.calls[-1].headers["Authorization"] == "Bearer sk-test"


async def test_disconnect_drops_the_connection(fake: FakeOpenAI) -> None:
    fake.inject("disconnect", after_chunks=1)
    body = {"model": "fake-model", "messages": USER, "stream": True}
    lines: list[str] = []
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("POST", f"{fake.base_url}/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    lines.append(line)
    assert any('"content":"Echo"' in line for line in lines)


async def test_wait_for_requests(fake: FakeOpenAI, sdk: openai.AsyncOpenAI) -> None:
    await sdk.chat.completions.create(model="fake-model", messages=USER)
    await fake.wait_for_requests(1, timeout=1)
    with pytest.raises(TimeoutError):
        await fake.wait_for_requests(2, timeout=0.05)


def test_thread_flavour_serves_sync_clients() -> None:
    with FakeOpenAIThread(reply="from a thread") as server:
        server.chunk_size = 100  # forwarded to the wrapped server
        body = {"model": "fake-model", "messages": USER}
        answer = httpx.post(f"{server.base_url}/chat/completions", json=body).json()
        server.wait_for_requests(1, timeout=5)
        assert answer["choices"][0]["message"]["content"] == "from a thread"
        assert server.requests[0]["messages"] == USER
        assert server.server.chunk_size == 100


def test_chunk_text() -> None:
    assert chunk_text("abcdefg", 3) == ["abc", "def", "g"]
    assert chunk_text("", 3) == []


def test_runs_standalone() -> None:
    command = [sys.executable, "-m", "tests.fakes.fake_openai", "--port", "0", "--reply", "hi"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            models = httpx.get(f"{base_url}/models").json()
            assert models["data"][0]["id"] == "fake-model"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def test_sdk_moderation_flags_the_words_a_test_names(
    fake: FakeOpenAI, sdk: openai.AsyncOpenAI
) -> None:
    fake.flag("knife", category="violence")
    result = await sdk.moderations.create(
        model="omni-moderation-latest", input=["a KNIFE fight", "a picnic"]
    )
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence is True
    assert [body["input"] for body in fake.moderations] == [["a KNIFE fight", "a picnic"]]
    fake.moderation_fault = "500"
    with pytest.raises(openai.InternalServerError):
        await sdk.with_options(max_retries=0).moderations.create(input="x")
