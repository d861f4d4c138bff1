"""The Provider protocol: what the core needs from any model backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call one tool (OpenAI ``tool_calls`` entry)."""

    id: str
    name: str
    #: the arguments as the model wrote them: JSON text, unchecked (hostile)
    arguments: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image shown to a model that sees, sent as a base64 ``data:`` URL."""

    mime: str  # image/png, image/jpeg, image/webp or image/gif
    data: bytes = field(repr=False)

    @property
    def data_url(self) -> str:
        """The image as the ``image_url`` of a chat-completions content part."""
        import base64

        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the chat-completions wire protocol."""

    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    #: images after the text (only for models that see them)
    images: tuple[ImagePart, ...] = ()

    def wire_content(self) -> str | list[dict[str, object]]:
        """``content`` as sent: the text, or text and image parts when there are images."""
        if not self.images:
            return self.content
        parts: list[dict[str, object]] = [{"type": "text", "text": self.content}]
        parts += [{"type": "image_url", "image_url": {"url": i.data_url}} for i in self.images]
        return parts

    #: an assistant message's tool calls (the round that asked for them)
    tool_calls: tuple[ToolCall, ...] = ()
    #: a ``tool`` message: the call it answers
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A request for one completion."""

    model: str  # the provider's own model name (alias already resolved)
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    user: str | None = None
    #: OpenAI function tool specs offered to the model (empty: no tools)
    tools: tuple[dict[str, Any], ...] = ()


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
class ToolCallsChunk:
    """The model asks for these tool calls (assembled from the stream; before ``FinishChunk``)."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class RetryChunk:
    """An attempt failed and will be retried after ``delay`` seconds."""

    attempt: int
    delay: float
    error: str
    status: int | None = None


ProviderEvent = TextChunk | UsageChunk | FinishChunk | RetryChunk | ToolCallsChunk


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A usable model, as every model picker shows it.

    ``source`` says where mschat knows it from: ``config`` (a provider's
    ``models`` list), ``server`` (the server's ``/models`` list), ``local`` (a
    GGUF file), ``bundled`` (the bundled offline model), ``default`` (mschat's
    built-in default of the official OpenAI API) or ``alias`` (then ``name`` is
    the alias, ``target`` the ``provider/model`` it stands for, and
    ``provider``/``model`` those of the target).
    """

    name: str  # "provider/model", or the alias
    provider: str
    model: str
    context_window: int | None = None
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    target: str | None = None  # aliases: the full name they resolve to
    default: bool = False  # the model used when none is chosen


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


@runtime_checkable
class ModelLister(Protocol):
    """A provider that can ask its server which models it serves."""

    def served_models(self) -> dict[str, int | None]:
        """Model ids (with their context window when the server says) in the server's order.

        Blocking; raises ``ProviderError`` when the server cannot list them.
        """
        ...


# ---- moderation ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Moderation:
    """A moderation endpoint's verdict on one text."""

    flagged: bool
    #: the categories it flagged (e.g. "harassment"), in the server's order
    categories: tuple[str, ...] = ()


@runtime_checkable
class Moderator(Protocol):
    """A provider with an OpenAI-compatible ``POST /moderations`` endpoint."""

    async def moderate(self, model: str, text: str) -> Moderation:
        """The verdict of ``model`` on ``text``; raises ``ProviderError``."""
        ...
