"""Tool calls on the wire: tools and tool messages in the payload, streamed
``delta.tool_calls`` assembled into one ``ToolCallsChunk``, and which models take tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.errors import ProviderError
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    TextChunk,
    ToolCall,
    ToolCallsChunk,
)
from mschat.providers.openai_compat import ProviderFailure, StreamState, Target, build_payload
from mschat.providers.registry import Registry
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI
from tests.providers.conftest import MakeProvider

SPEC = {"type": "function", "function": {"name": "t__echo", "parameters": {"type": "object"}}}
CALL = ToolCall(id="call_1", name="t__echo", arguments='{"text": "hi"}')


def test_the_payload_carries_tools_calls_and_results():
    request = ChatRequest(
        model="m",
        messages=(
            ChatMessage("user", "q"),
            ChatMessage("assistant", "", tool_calls=(CALL,)),
            ChatMessage("tool", "echo: hi", tool_call_id="call_1"),
        ),
        tools=(SPEC,),
    )
    payload = build_payload(request)
    assert payload["tools"] == [SPEC]
    user, asked, answer = payload["messages"]
    assert user == {"role": "user", "content": "q"}
    assert asked["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "t__echo", "arguments": '{"text": "hi"}'},
        }
    ]
    assert answer == {"role": "tool", "content": "echo: hi", "tool_call_id": "call_1"}
    assert "tools" not in build_payload(ChatRequest(model="m", messages=(user_msg(),)))


def user_msg() -> ChatMessage:
    return ChatMessage("user", "q")


def _chunk(delta: dict, finish: str | None = None) -> str:
    return "data: " + json.dumps({"choices": [{"delta": delta, "finish_reason": finish}]})


def _feed(state: StreamState, *lines: str) -> list:
    events = []
    for line in lines:
        events += state.feed_line(line)
        events += state.feed_line("")
    return events + state.end()


def test_fragments_of_two_calls_are_assembled_in_index_order():
    state = StreamState(Target("p", "http://x/v1", "m", None))
    events = _feed(
        state,
        _chunk({"content": "Let me look. "}),
        _chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "s__two"}}]}),
        _chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "s__one"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": '}}]}),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk({}, "tool_calls"),
    )
    assert events == [
        TextChunk("Let me look. "),
        ToolCallsChunk((ToolCall("a", "s__one", '{"x": 1}'), ToolCall("b", "s__two", "{}"))),
        FinishChunk("tool_calls"),
    ]


@pytest.mark.parametrize(
    "delta",
    [
        {"tool_calls": {"index": 0}},
        {"tool_calls": ["nope"]},
        {"tool_calls": [{"index": "0"}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 5}}]},
        {"tool_calls": [{"index": 0, "function": "f"}]},
    ],
)
def test_malformed_tool_call_deltas_are_a_clear_error(delta: dict):
    state = StreamState(Target("p", "http://x/v1", "m", None))
    with pytest.raises(ProviderFailure, match="did not answer like an OpenAI-compatible"):
        _feed(state, _chunk(delta))


async def test_streamed_tool_calls_from_the_fake_server(fake: FakeOpenAI, make: MakeProvider):
    fake.push(tool_calls=[("t__echo", {"text": "a long argument to cut in pieces"})])
    provider = make()
    request = ChatRequest(model="fake-model", messages=(user_msg(),), tools=(SPEC,))
    events = [e async for e in provider.stream_chat(request)]
    [calls] = [e for e in events if isinstance(e, ToolCallsChunk)]
    assert [(c.name, json.loads(c.arguments)) for c in calls.calls] == [
        ("t__echo", {"text": "a long argument to cut in pieces"})
    ]
    assert events[-1] == FinishChunk("tool_calls")
    assert fake.requests[0]["tools"] == [SPEC]


async def test_a_stream_cut_mid_call_is_not_a_call(fake: FakeOpenAI, make: MakeProvider):
    fake.push(tool_calls=[("t__echo", {"text": "x" * 50})], fault="no_finish", after_chunks=99)
    provider = make(max_retries=0)
    request = ChatRequest(model="fake-model", messages=(user_msg(),), tools=(SPEC,))
    events = []
    with pytest.raises(ProviderError, match="cut off"):
        async for event in provider.stream_chat(request):
            events.append(event)
    assert len(fake.requests) == 1 and not events  # no half-assembled call came out


def test_which_models_take_tools(mschat_home: Path):
    write_config(
        mschat_home,
        '[providers.openai]\napi_key = "k"\n'
        '[providers.ollama]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["llama3", "qwen"]\n'
        '[providers.vllm]\nbase_url = "http://127.0.0.1:9/v1"\ntools = true\n'
        '[providers.llama]\ntype = "local"\npath = "/nowhere.gguf"\ntools = true\n'
        '[models."ollama/qwen"]\ntools = true\n'
        '[models."openai/gpt-4o-mini"]\ntools = false\n',
    )
    registry = Registry(load_config())
    takes = registry.takes_tools
    assert takes("openai", "gpt-4o") and takes("openai", "gpt-4.1-mini")
    assert takes("openai", "gpt-5") and takes("openai", "o3-mini")
    assert not takes("openai", "gpt-3.5-turbo")
    assert not takes("openai", "gpt-4o-mini")  # [models."…"] wins
    assert not takes("ollama", "llama3") and takes("ollama", "qwen")
    assert takes("vllm", "anything")
    assert not takes("llama", "model")  # the local llama.cpp provider takes none
    assert not takes("nowhere", "gpt-4o")
