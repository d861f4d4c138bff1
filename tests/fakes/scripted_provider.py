"""An in-process Provider for core tests: scripted replies, faults and gates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mschat.core.errors import ProviderError
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    ProviderEvent,
    RetryChunk,
    TextChunk,
    UsageChunk,
)


@dataclass
class Script:
    """What one request does: chunks to send, then an optional error or a gate."""

    chunks: list[str] = field(default_factory=lambda: ["Hello", ", ", "world"])
    error: ProviderError | None = None
    retries: int = 0
    finish: str | None = "stop"
    gate: asyncio.Event | None = None  # wait here after the first chunk


class ScriptedProvider:
    """Records every request; replies "Echo: <last user message>" unless scripted."""

    def __init__(self, name: str = "fake", *, context_window: int | None = None) -> None:
        self.name = name
        self.requests: list[ChatRequest] = []
        self.scripts: list[Script] = []
        self.context_window = context_window
        self.closed = False

    def __repr__(self) -> str:
        return f"<ScriptedProvider {self.name}>"

    def push(self, **kwargs: object) -> Script:
        """Queue the behaviour of the next request."""
        script = Script(**kwargs)  # type: ignore[arg-type]
        self.scripts.append(script)
        return script

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the scripted (or echo) reply."""
        self.requests.append(request)
        if self.scripts:
            script = self.scripts.pop(0)
        else:
            last = request.messages[-1].content if request.messages else ""
            script = Script(chunks=["Echo: ", last])
        for attempt in range(1, script.retries + 1):
            yield RetryChunk(attempt=attempt, delay=0.0, error="429 rate limited", status=429)
        for index, chunk in enumerate(script.chunks):
            yield TextChunk(chunk)
            if index == 0 and script.gate is not None:
                await script.gate.wait()
        if script.error is not None:
            raise script.error
        prompt = sum(len(m.content) for m in request.messages)
        yield UsageChunk(prompt_tokens=prompt, completion_tokens=len(script.chunks))
        if script.finish:
            yield FinishChunk(script.finish)

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> int | None:
        """No tokenizer: the core falls back to its estimate."""
        return None

    async def aclose(self) -> None:
        """Nothing to release."""
        self.closed = True
