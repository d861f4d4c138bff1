"""The Provider protocol: what the core needs from any model backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the chat-completions wire protocol."""

    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A request for one completion."""

    model: str  # the provider's own model name (alias already resolved)
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    user: str | None = None


# ---- events a provider yields while streaming -------------------------------


@dataclass(frozen=True, slots=True)
class TextChunk:
    """A piece of the reply text."""

    text: str


@dataclass(frozen=True, slots=True)
class UsageChunk:
    """Token usage reported by the provider (usually at the end)."""

    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True, slots=True)
class FinishChunk:
    """The stream ended normally with this finish reason ("stop", "length", ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class RetryChunk:
    """An attempt failed and will be retried after ``delay`` seconds."""

    attempt: int
    delay: float
    error: str
    status: int | None = None


ProviderEvent = TextChunk | UsageChunk | FinishChunk | RetryChunk


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model a provider offers."""

    name: str  # full name, "provider/model"
    provider: str
    model: str
    context_window: int | None = None
    source: str = ""  # e.g. "config", "server", "bundled"
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    """A backend that completes chats. Errors raise ``ProviderError``."""

    name: str

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the reply to ``request``; ends with exactly one FinishChunk."""
        ...

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> int | None:
        """Count prompt tokens offline, or None when no tokenizer is available."""
        ...

    async def aclose(self) -> None:
        """Release connections, models and threads."""
        ...


class SyncProvider(Protocol):
    """Optional blocking flavour of a provider (scripts, threads)."""

    def stream_chat_sync(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        """Blocking version of ``stream_chat``."""
        ...
