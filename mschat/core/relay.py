"""Streaming one reply into its stored row, and the provider's token counter."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from mschat.core.errors import MschatError, ProviderError
from mschat.core.events import Completed, Event, Failed, Retrying, TextDelta, UsageReported
from mschat.core.models import Message, MessageStatus, Session, Usage, User, utcnow
from mschat.core.tokens import estimate_tokens
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    Provider,
    RetryChunk,
    TextChunk,
    UsageChunk,
)
from mschat.providers.registry import ResolvedModel

if TYPE_CHECKING:
    from mschat.core.manager import SessionManager


class ReplyRelay:
    """Streams one reply into its stored row and records each provider request."""

    def __init__(
        self,
        manager: SessionManager,
        user: User,
        session: Session,
        reply: Message,
        resolved: ResolvedModel,
    ) -> None:
        self.manager = manager
        self.store = manager.store
        self.user = user
        self.session = session
        self.reply = reply
        self.resolved = resolved
        self.parts: list[str] = []
        self.usage = Usage()
        self.prompt_tokens = 0
        self.started = time.monotonic()
        self.attempt_started = self.started
        self.attempt_at = utcnow()
        self.first_token: float | None = None
        self.finish_reason: str | None = None
        self.done = False

    def _elapsed_ms(self, since: float | None = None) -> int:
        return int((time.monotonic() - (since or self.started)) * 1000)

    def _call_row(self, status: str, **values: Any) -> dict[str, Any]:
        return {
            "message_id": self.reply.id,
            "session_id": self.session.id,
            "user_id": self.user.id,
            "provider": self.resolved.provider,
            "model": self.resolved.model,
            "started": self.attempt_at,
            "latency_ms": self._elapsed_ms(self.attempt_started),
            "first_token_ms": (
                int((self.first_token - self.attempt_started) * 1000)
                if self.first_token is not None
                else None
            ),
            "status": status,
            **values,
        }

    async def stream(self, provider: Provider, request: ChatRequest) -> AsyncIterator[Event]:
        run = self.manager._run
        last_flush = time.monotonic()
        flushed = 0
        async for chunk in provider.stream_chat(request):
            if isinstance(chunk, TextChunk):
                if self.first_token is None:
                    self.first_token = time.monotonic()
                self.parts.append(chunk.text)
                yield TextDelta(chunk.text)
                now = time.monotonic()
                if now - last_flush >= self.manager.flush_interval and len(self.parts) > flushed:
                    flushed = len(self.parts)
                    last_flush = now
                    await run(self.store.update_message, self.reply.id, content="".join(self.parts))
            elif isinstance(chunk, UsageChunk):
                self.usage = Usage(chunk.prompt_tokens, chunk.completion_tokens)
                yield UsageReported(self.usage)
            elif isinstance(chunk, RetryChunk):
                await run(
                    self.store.add_api_call,
                    **self._call_row("retry", http_status=chunk.status, error=chunk.error),
                )
                self.attempt_started = time.monotonic()
                self.attempt_at = utcnow()
                yield Retrying(chunk.attempt, chunk.delay, chunk.error)
            elif isinstance(chunk, FinishChunk):
                self.finish_reason = chunk.reason
        if self.finish_reason is None:
            raise ProviderError(
                f"the reply from {self.resolved.provider} ended without a finish reason",
                kind="bad_response",
            )
        yield await self.complete()

    async def complete(self) -> Completed:
        content = "".join(self.parts)
        values = {
            "content": content,
            "status": MessageStatus.COMPLETE.value,
            "tokens_in": self.usage.prompt_tokens,
            "tokens_out": self.usage.completion_tokens,
            "latency_ms": self._elapsed_ms(),
            "finish_reason": self.finish_reason,
        }
        call = self._call_row(
            "ok",
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            finish_reason=self.finish_reason,
        )
        message = await self.manager._run(self._finish, values, call)
        self.done = True
        return Completed(message=message, usage=self.usage, prompt_tokens=self.prompt_tokens)

    def _finish(self, values: dict[str, Any], call: dict[str, Any]) -> Message:
        """Final writes of a reply: the message row, its api_calls row, the times."""
        with self.store.write():
            self.store.update_message(self.reply.id, **values)
            self.store.add_api_call(**call)
            self.store.touch_session(self.session.id)
        return dataclasses.replace(self.reply, **values)

    async def fail(self, error: MschatError) -> Failed:
        values = {
            "content": "".join(self.parts),
            "status": MessageStatus.FAILED.value,
            "latency_ms": self._elapsed_ms(),
            "error": str(error),
            "tokens_in": self.usage.prompt_tokens,
            "tokens_out": self.usage.completion_tokens,
        }
        call = self._call_row("error", http_status=getattr(error, "status", None), error=str(error))
        message = await self.manager._run(self._finish, values, call)
        self.done = True
        return Failed(error=error, message=message)

    def interrupt(self) -> None:
        """Mark the reply interrupted, synchronously: the task is being cancelled."""
        if self.done:
            return
        self.done = True
        values = {
            "content": "".join(self.parts),
            "status": MessageStatus.INTERRUPTED.value,
            "latency_ms": self._elapsed_ms(),
            "finish_reason": "interrupted",
        }
        call = self._call_row("interrupted")
        self._finish(values, call)


def counter_for(provider: Provider, model: str) -> Callable[[str], int]:
    """The provider's own tokenizer when it has one offline, else the estimate."""
    counter = getattr(provider, "count_tokens", None)
    if counter is None:
        return estimate_tokens
    try:
        probe = counter(model, [ChatMessage("user", "probe")])
    except Exception:
        probe = None
    if probe is None:
        return estimate_tokens

    def count(text: str) -> int:
        result = counter(model, [ChatMessage("user", text)])
        return int(result) if result is not None else estimate_tokens(text)

    return count
