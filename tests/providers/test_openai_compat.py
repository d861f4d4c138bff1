"""OpenAICompatProvider against the loopback fake OpenAI server, and its pure parts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import subprocess
import sys
import types
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from mschat.core.errors import ProviderError
from mschat.providers import openai_compat
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    Provider,
    ProviderEvent,
    RetryChunk,
    TextChunk,
    UsageChunk,
)
from mschat.providers.openai_compat import (
    OpenAICompatProvider,
    ProviderFailure,
    SSEDecoder,
    Target,
    classify_transport_error,
    parse_retry_after,
    retry_delay,
)
from tests.fakes.fake_openai import FakeOpenAI
from tests.providers.conftest import KEY, MakeProvider

REQUEST = ChatRequest(
    model="fake-model",
    messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "hello there")),
    max_tokens=100,
    temperature=0.5,
    seed=7,
    user="u1",
)


async def collect(
    provider: OpenAICompatProvider, request: ChatRequest = REQUEST
) -> list[ProviderEvent]:
    """Every event of one streamed reply."""
    return [event async for event in provider.stream_chat(request)]


async def fails(
    provider: OpenAICompatProvider, request: ChatRequest = REQUEST
) -> tuple[ProviderError, list[ProviderEvent]]:
    """The error a stream ends with, and the events before it."""
    events: list[ProviderEvent] = []
    with pytest.raises(ProviderError) as info:
        async for event in provider.stream_chat(request):
            events.append(event)
    assert KEY not in str(info.value)
    return info.value, events


def text_of(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextChunk))


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- streaming --------------------------------------------------------------------


async def test_streams_text_usage_then_one_finish(fake: FakeOpenAI, make: MakeProvider) -> None:
    provider = make()
    assert isinstance(provider, Provider)
    events = await collect(provider)
    assert text_of(events) == "Echo: hello there"
    assert isinstance(events[-1], FinishChunk) and events[-1].reason == "stop"
    assert sum(isinstance(e, FinishChunk) for e in events) == 1
    usage = [e for e in events if isinstance(e, UsageChunk)]
    assert usage == [UsageChunk(prompt_tokens=usage[0].prompt_tokens, completion_tokens=5)]
    sent = fake.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert (sent["max_tokens"], sent["temperature"], sent["seed"], sent["user"]) == (
        100,
        0.5,
        7,
        "u1",
    )
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert fake.calls[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_optional_fields_are_omitted_and_length_finish(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    request = ChatRequest(model="fake-model", messages=(ChatMessage("user", "hi"),))
    fake.push(reply="x" * 40)
    events = await collect(
        make(), ChatRequest(model="fake-model", messages=request.messages, max_tokens=2)
    )
    assert text_of(events) == "x" * 8 and events[-1] == FinishChunk("length")
    await collect(make(), request)
    assert not {"max_tokens", "temperature", "seed", "user"} & fake.requests[1].keys()


async def test_complete_and_served_models(fake: FakeOpenAI, make: MakeProvider) -> None:
    provider = make()
    text, usage, reason = await provider.complete(REQUEST)
    assert (text, reason) == ("Echo: hello there", "stop")
    assert usage is not None and usage.completion_tokens == 5
    fake.model_contexts["fake-large"] = 32768
    served = await asyncio.to_thread(provider.served_models)  # blocking: off the fake's loop
    assert list(served.items()) == [("fake-model", None), ("fake-large", 32768)]  # its order


async def test_client_is_lazy_and_reopens_after_close(make: MakeProvider) -> None:
    provider = make()
    assert provider._aclient is None
    await collect(provider)
    await provider.aclose()
    assert text_of(await collect(provider)) == "Echo: hello there"


async def test_server_ignoring_stream_flag_still_works() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "choices": [{"index": 0, "message": {"content": "plain"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
        return httpx.Response(200, json=body)

    provider = OpenAICompatProvider(
        "mock", "http://mock/v1", transport=httpx.MockTransport(handler)
    )
    events = await collect(provider)
    await provider.aclose()
    assert events == [TextChunk("plain"), UsageChunk(3, 1), FinishChunk("stop")]


# ---- retries -------------------------------------------------------------------


async def test_429_honours_retry_after_ms_then_succeeds(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.inject("429", retry_after_ms=50)
    events = await collect(make())
    retries = [e for e in events if isinstance(e, RetryChunk)]
    assert retries == [RetryChunk(attempt=1, delay=0.05, error=retries[0].error, status=429)]
    assert "rate limited by fake (429)" in retries[0].error
    assert text_of(events) == "Echo: hello there"
    assert fake.calls[1].time - fake.calls[0].time >= 0.045


async def test_a_retry_is_one_event_and_nothing_on_stderr(
    fake: FakeOpenAI, make: MakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.inject("503")
    events = await collect(make())
    assert [type(e) for e in events].count(RetryChunk) == 1
    # with no logging configured (the CLI), records from WARNING up reach stderr
    # through logging's last-resort handler: a retry must not make one
    mine = [r for r in caplog.records if r.name.startswith("mschat")]
    assert mine and all(r.levelno < logging.WARNING for r in mine)


async def test_429_forever_is_rate_limited(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("429", times=None, retry_after_ms=1)
    error, events = await fails(make(max_retries=2))
    assert error.kind == "rate_limited" and error.status == 429
    assert str(error).startswith("rate limited by fake (429) after 3 attempts")
    assert [e.attempt for e in events if isinstance(e, RetryChunk)] == [1, 2]
    assert len(fake.requests) == 3


async def test_500_forever_is_a_server_error(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("500", times=None, message="boom")
    error, _ = await fails(make(max_retries=1))
    assert error.kind == "server"
    assert str(error) == "server error 500 from fake after 2 attempts: boom"


async def test_503_once_then_success(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("503")
    events = await collect(make())
    assert [e.status for e in events if isinstance(e, RetryChunk)] == [503]
    assert events[-1] == FinishChunk("stop")


async def test_401_is_auth_without_retry(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("401", message=f"Incorrect API key provided: {KEY}")
    error, events = await fails(make(api_key_env="FAKE_KEY"))
    assert error.kind == "auth" and not events and len(fake.requests) == 1
    assert str(error) == (
        "the API key for provider 'fake' was rejected (401); set FAKE_KEY or providers.fake.api_key"
    )


async def test_unknown_model(fake: FakeOpenAI, make: MakeProvider) -> None:
    error, _ = await fails(make(), ChatRequest(model="nope", messages=REQUEST.messages))
    assert error.kind == "model_not_found"
    assert str(error) == f"model 'nope' not found on provider 'fake' ({fake.base_url})"


async def test_context_length(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("context_length")
    error, _ = await fails(make())
    assert error.kind == "context_length" and "maximum context length" in str(error)


async def test_other_4xx_is_bad_request_with_server_message(
    fake: FakeOpenAI, make: MakeProvider
) -> None:
    fake.inject("400", message=f"temperature is invalid for key {KEY}")
    error, _ = await fails(make())
    assert error.kind == "bad_request"
    assert (
        str(error)
        == "provider 'fake' rejected the request (400): temperature is invalid for key ****"
    )


async def test_hang_times_out_after_retries(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("hang", times=2)
    error, events = await fails(make(timeout=0.3, max_retries=1))
    assert error.kind == "timeout" and "after 2 attempts" in str(error)
    assert [type(e) for e in events] == [RetryChunk]


async def test_unreachable_names_the_url(make: MakeProvider) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    error, events = await fails(make(base_url=url, max_retries=1))
    assert error.kind == "unreachable"
    assert (
        str(error) == f"cannot reach provider 'fake' at {url} after 2 attempts: connection refused"
    )
    assert len(events) == 1


async def test_no_retry_once_text_was_sent(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("disconnect", after_chunks=2)
    error, events = await fails(make())
    assert error.kind in ("unreachable", "bad_response") and "mid-reply" in str(error)
    assert text_of(events) == "Echo: he" and len(fake.requests) == 1


async def test_disconnect_before_text_is_retried(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("disconnect", after_chunks=0)
    events = await collect(make())
    assert isinstance(events[0], RetryChunk) and text_of(events) == "Echo: hello there"


async def test_stall_mid_reply_times_out(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("stall", after_chunks=1)
    error, events = await fails(make(timeout=0.3))
    assert error.kind == "timeout" and text_of(events) == "Echo"


@pytest.mark.parametrize("done", [True, False])
async def test_missing_finish_reason_is_an_error(
    fake: FakeOpenAI, make: MakeProvider, done: bool
) -> None:
    fake.inject("no_finish", after_chunks=3, done=done)
    error, events = await fails(make())
    assert error.kind == "bad_response" and "cut off" in str(error)
    assert not any(isinstance(e, FinishChunk) for e in events)


async def test_error_object_inside_the_stream(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.inject("stream_error", after_chunks=1, message="overloaded")
    error, _ = await fails(make())
    assert "mid-stream" in str(error) and str(error).endswith("overloaded")


async def test_served_models_auth_error(fake: FakeOpenAI, make: MakeProvider) -> None:
    fake.api_key = "sk-other"
    with pytest.raises(ProviderError) as info:
        await asyncio.to_thread(make().served_models)
    assert info.value.kind == "auth"


def test_repr_hides_the_key() -> None:
    provider = OpenAICompatProvider("openai", "https://api.example/v1", KEY)
    assert KEY not in repr(provider) and "api_key=<set>" in repr(provider)


# ---- pure parts ------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    now = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    date = format_datetime(datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 3.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_retry_delay_policy() -> None:
    failure = ProviderFailure("server", "boom", retryable=True)
    options = {"max_retries": 3, "base": 1.0, "cap": 3.0, "rand": lambda: 1.0}
    assert [retry_delay(failure, n, text_sent=False, **options) for n in (1, 2, 3, 4)] == [
        1.0,
        2.0,
        3.0,
        None,
    ]  # type: ignore[arg-type]
    assert retry_delay(failure, 1, text_sent=True, **options) is None  # type: ignore[arg-type]
    hinted = ProviderFailure("rate_limited", "slow", retryable=True, retry_after=0.2)
    assert retry_delay(hinted, 1, text_sent=False, **options) == 0.2  # type: ignore[arg-type]
    jittered = retry_delay(
        failure, 1, text_sent=False, max_retries=3, base=1.0, cap=3.0, rand=lambda: 0.0
    )
    assert jittered == 0.75
    assert retry_delay(ProviderFailure("auth", "no"), 1, text_sent=False, **options) is None  # type: ignore[arg-type]


def test_sse_decoder() -> None:
    decoder = SSEDecoder()
    lines = [": keep-alive", "event: message", 'data: {"a":', "data: 1}", "", "data:[DONE]"]
    assert [decoder.feed(line) for line in lines] == [None, None, None, None, '{"a":\n1}', None]
    assert decoder.flush() == "[DONE]" and decoder.flush() is None


def test_dns_failure_message() -> None:
    target = Target("openai", "http://nowhere.invalid/v1", "m", None)
    exc = httpx.ConnectError("[Errno -2] Name or service not known")
    failure = classify_transport_error(target, exc)
    assert failure.kind == "unreachable" and failure.retryable
    assert failure.message().startswith(
        "cannot reach provider 'openai' at http://nowhere.invalid/v1: host not found"
    )


def test_count_tokens_without_tiktoken_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    openai_compat._load_encoding.cache_clear()
    provider = OpenAICompatProvider("openai", "http://x/v1")
    assert provider.count_tokens("gpt-4o", [ChatMessage("user", "hi")]) is None
    assert provider.count_tokens("llama3", [ChatMessage("user", "hi")]) is None


def test_count_tokens_with_cached_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = openai_compat._TIKTOKEN_BLOBS["o200k_base"]
    (tmp_path / hashlib.sha1(blob.encode()).hexdigest()).write_text("cached")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    # a stand-in tiktoken whose "tokens" are words: proves the call shape offline
    stub = types.ModuleType("tiktoken")
    stub.get_encoding = lambda name: types.SimpleNamespace(encode=str.split)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", stub)
    openai_compat._load_encoding.cache_clear()
    try:
        count = OpenAICompatProvider("openai", "http://x/v1").count_tokens(
            "openai/gpt-4o-mini", [ChatMessage("user", "two words")]
        )
    finally:
        openai_compat._load_encoding.cache_clear()
    assert count == 3 + 1 + 2 + 3


def test_import_stays_light() -> None:
    code = (
        "import sys, json, mschat.providers.openai_compat\n"
        "print(json.dumps([m for m in ('openai', 'tiktoken', 'aiohttp') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_reasoning_models_get_max_completion_tokens_and_no_temperature():
    from mschat.providers.base import ChatMessage, ChatRequest
    from mschat.providers.openai_compat import build_payload

    request = ChatRequest("o3-mini", (ChatMessage("user", "hi"),), max_tokens=5, temperature=0.2)
    payload = build_payload(request)
    assert payload["max_completion_tokens"] == 5
    assert "max_tokens" not in payload and "temperature" not in payload
    plain = build_payload(ChatRequest("gpt-4o", (ChatMessage("user", "hi"),), max_tokens=5))
    assert plain["max_tokens"] == 5


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_line_splitter_handles_every_line_ending_across_chunks(ending: bytes) -> None:
    from mschat.providers.openai_compat import LineSplitter

    text = ending.join([b'data: {"a": "\xc3\xa9"}', b"", b": keep-alive", b"data: [DONE]", b""])
    for size in (1, 2, 3, 7, len(text)):
        splitter = LineSplitter()
        lines: list[str] = []
        for start in range(0, len(text), size):
            lines += splitter.feed(text[start : start + size])
        lines += splitter.close()
        assert lines == ['data: {"a": "é"}', "", ": keep-alive", "data: [DONE]"], (ending, size)
    unterminated = LineSplitter()
    assert unterminated.feed(b"data: 1" + ending + b"data: 2") == ["data: 1"]
    assert unterminated.close() == ["data: 2"]
