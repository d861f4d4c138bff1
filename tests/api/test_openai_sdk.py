"""The official openai SDK against /v1, end to end: SDK → mschat API → core → httpx →
the loopback fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import web

from mschat.core.services import Services
from tests.api.conftest import LiveApi, live_api, serve_app
from tests.fakes.fake_openai import FakeOpenAI

TOKEN = "sdk-token-0123456789"


@pytest.fixture
async def e2e(fake_services: Services) -> AsyncIterator[LiveApi]:
    async for live in live_api(fake_services, token=TOKEN):
        yield live


@pytest.fixture
async def sdk(e2e: LiveApi) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{e2e.url}/v1", api_key=TOKEN, max_retries=0)
    yield client
    await client.close()


async def test_non_streaming_with_usage_then_continue_via_header(
    e2e: LiveApi, sdk: openai.AsyncOpenAI, fake_openai: FakeOpenAI
):
    raw = await sdk.chat.completions.with_raw_response.create(
        model="fake/fake-model",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "What is SQLite?"},
        ],
        user="sdk-user",
    )
    session_id = raw.headers["X-Mschat-Session"]
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: What is SQLite?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.model == "fake/fake-model"

    # continue: only the new user message is sent; the session holds the history
    again = await sdk.chat.completions.with_raw_response.create(
        model="fake/fake-model",
        messages=[{"role": "user", "content": "And WAL mode?"}],
        user="sdk-user",
        extra_headers={"X-Mschat-Session": session_id},
    )
    assert again.headers["X-Mschat-Session"] == session_id
    assert again.parse().choices[0].message.content == "Echo: And WAL mode?"
    upstream = fake_openai.requests[-1]["messages"]
    assert [m["content"] for m in upstream] == [
        "Be terse.",
        "What is SQLite?",
        "Echo: What is SQLite?",
        "And WAL mode?",
    ]
    manager = e2e.services.manager
    user = await manager.user("api", "sdk-user")
    session = await manager.get_session(user, int(session_id))
    assert session.system_msg == "Be terse." and session.origin == "api"
    assert session.message_count == 4


async def test_streaming_with_the_final_usage_chunk(e2e: LiveApi, sdk: openai.AsyncOpenAI):
    response = await sdk.chat.completions.with_raw_response.create(
        model="fake/fake-model",
        messages=[{"role": "user", "content": "Stream me a reply please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    session_id = int(response.headers["X-Mschat-Session"])
    stream = response.parse()
    pieces, usage, finish = [], None, None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == "Echo: Stream me a reply please"
    assert finish == "stop"
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    # requests without `user` belong to api.default_user
    manager = e2e.services.manager
    default = await manager.user("api", "api")
    stored = await manager.messages(default, session_id)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete")]


async def test_streaming_continues_a_session_and_without_usage(
    e2e: LiveApi, sdk: openai.AsyncOpenAI
):
    first = await sdk.chat.completions.with_raw_response.create(
        model="fake/fake-model", messages=[{"role": "user", "content": "one"}], user="s"
    )
    session_id = first.headers["X-Mschat-Session"]
    stream = await sdk.chat.completions.create(
        model="fake/fake-model",
        messages=[{"role": "user", "content": "two"}],
        user="s",
        stream=True,
        extra_headers={"X-Mschat-Session": session_id},
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: two"
    s = await e2e.services.manager.user("api", "s")
    stored = await e2e.services.manager.messages(s, int(session_id))
    assert [m.content for m in stored] == ["one", "Echo: one", "two", "Echo: two"]


async def test_supplied_history_is_stored_in_the_new_session(
    e2e: LiveApi, sdk: openai.AsyncOpenAI, fake_openai: FakeOpenAI
):
    raw = await sdk.chat.completions.with_raw_response.create(
        model="fake/fake-model",
        messages=[
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        ],
        user="ada",
    )
    session_id = int(raw.headers["X-Mschat-Session"])
    assert [m["content"] for m in fake_openai.requests[-1]["messages"]] == [
        "My name is Ada.",
        "Hello Ada.",
        "What is my name?",
    ]
    ada = await e2e.services.manager.user("api", "ada")
    stored = await e2e.services.manager.messages(ada, session_id)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
        ("assistant", "Echo: What is my name?"),
    ]


async def test_models_and_errors_in_openai_shape(
    e2e: LiveApi, sdk: openai.AsyncOpenAI, fake_openai: FakeOpenAI
):
    models = await sdk.models.list()
    ids = [model.id for model in models.data]
    assert ids[0] == "fake/fake-model" and "fake/fake-large" in ids

    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.chat.completions.create(
            model="nowhere/none", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.chat.completions.create(
            model="fake/fake-model", messages=[{"role": "assistant", "content": "hi"}]
        )
    assert bad.value.param == "messages"
    with pytest.raises(openai.PermissionDeniedError):
        other = await sdk.chat.completions.with_raw_response.create(
            model="fake/fake-model", messages=[{"role": "user", "content": "x"}], user="owner"
        )
        await sdk.chat.completions.create(
            model="fake/fake-model",
            messages=[{"role": "user", "content": "peek"}],
            user="intruder",
            extra_headers={"X-Mschat-Session": other.headers["X-Mschat-Session"]},
        )
    wrong = openai.AsyncOpenAI(base_url=f"{e2e.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await wrong.models.list()
    await wrong.close()

    # an upstream failure arrives as an APIError, in the stream too
    fake_openai.inject("500", times=1)
    with pytest.raises(openai.APIStatusError) as failed:
        await sdk.chat.completions.create(
            model="fake/fake-model", messages=[{"role": "user", "content": "boom"}]
        )
    assert failed.value.status_code == 502
    fake_openai.inject("stream_error", times=1)
    stream = await sdk.chat.completions.create(
        model="fake/fake-model",
        messages=[{"role": "user", "content": "boom " * 10}],
        stream=True,
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_the_sdk_sends_no_idempotency_key_on_its_retries():
    """What the SDK does (hence the README's max_retries=0 advice): it retries a 5xx
    (or a timeout) with the same body and no Idempotency-Key."""
    seen: list[dict[str, str]] = []

    async def failing(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response(
            {"error": {"message": "boom", "type": "api_error", "param": None, "code": None}},
            status=500,
            headers={"retry-after-ms": "1"},
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", failing)
    runner, url = await serve_app(app)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k")  # default retries
    try:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        await client.close()
        await runner.cleanup()
    assert [h["x-stainless-retry-count"] for h in seen] == ["0", "1", "2"]
    assert not any("idempotency-key" in h for h in seen)


async def test_one_failed_sdk_call_leaves_one_session(e2e: LiveApi, fake_openai: FakeOpenAI):
    """With the SDK's default retries, a provider failure is asked once: mschat already
    retried the provider and says so (x-should-retry: false)."""
    client = openai.AsyncOpenAI(base_url=f"{e2e.url}/v1", api_key=TOKEN)  # max_retries=2
    fake_openai.inject("500", times=None)
    try:
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(
                model="fake/fake-model", messages=[{"role": "user", "content": "x"}], user="once"
            )
    finally:
        await client.close()
    assert failed.value.status_code == 502
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert len(fake_openai.requests) == 1
    manager = e2e.services.manager
    once = await manager.find_existing_user("api", "once")
    assert once is not None and len(await manager.list_sessions(once)) == 1


async def test_an_sdk_retry_with_an_idempotency_key_gets_the_first_answer(
    e2e: LiveApi, sdk: openai.AsyncOpenAI, fake_openai: FakeOpenAI
):
    asked = {
        "model": "fake/fake-model",
        "messages": [{"role": "user", "content": "count me once"}],
        "user": "keyed",
        "extra_headers": {"Idempotency-Key": "sdk-call-1"},
    }
    first = await sdk.chat.completions.with_raw_response.create(**asked)  # type: ignore[call-overload]
    again = await sdk.chat.completions.with_raw_response.create(**asked)  # type: ignore[call-overload]
    assert again.parse().id == first.parse().id
    assert again.headers["X-Mschat-Session"] == first.headers["X-Mschat-Session"]
    assert len(fake_openai.requests) == 1
