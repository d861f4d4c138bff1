"""Streaming one reply into its stored row, and recording each provider request.

The writer holds the reply row's lease (``messages.lease_until``): set when the
row is made, pushed forward by every content flush and, while no flush happens
(waiting for the first token, a slow stream), by the turn's periodic renewal
calling :meth:`ReplyWriter.renew_if_idle`. A reply still ``streaming`` with an
expired lease therefore has no writer any more (see ``recovery.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mschat.core.answer.turns import LEASE, Runner, stamp
from mschat.core.errors import ContentFlagged, MschatError, ProviderError
from mschat.core.events import (
    Completed,
    Event,
    Failed,
    Retrying,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from mschat.core.models import Message, MessageStatus, Usage
from mschat.core.tools.rounds import RoundEnded
from mschat.providers.base import (
    ChatRequest,
    FinishChunk,
    Provider,
    RetryChunk,
    TextChunk,
    UsageChunk,
)
from mschat.store.contract import Store

if TYPE_CHECKING:
    from mschat.core.tools.loop import ToolLoop

#: how often a streaming reply is written to the database (other processes watch it)
FLUSH_INTERVAL = 0.25


class WriterSettings:
    """How a reply is written: content flush interval and the lease of its row."""

    # a plain class, not a dataclass: this module is on the cold path of `mschat ask`
    __slots__ = ("flush_interval", "lease")

    def __init__(self, flush_interval: float = FLUSH_INTERVAL, lease: timedelta = LEASE) -> None:
        self.flush_interval = flush_interval
        self.lease = lease


class ReplyWriter:
    """Streams one reply into its stored row and records each provider request."""

    def __init__(
        self,
        store: Store,
        run: Runner,
        settings: WriterSettings,
        *,
        reply: Message,
        user_id: int,
        provider: str,
        model: str,
    ) -> None:
        self.store = store
        self.run = run
        self.settings = settings
        self.reply = reply
        self.user_id = user_id
        self.provider = provider
        self.model = model
        self.parts: list[str] = []
        self.usage = Usage()
        self.prompt_tokens = 0
        self.started = time.monotonic()
        self.attempt_started = self.started
        self.attempt_at = datetime.now(UTC)
        self.first_token: float | None = None
        self.finish_reason: str | None = None
        #: when the lease was last pushed forward (the row was made just before)
        self.renewed = self.started
        self.done = False
        #: checks the whole answer before it is shown or stored as complete (moderation);
        #: while set, no text is shown or flushed as it streams
        self.check: Callable[[str], Awaitable[None]] | None = None
        #: tokens of the requests that ended in tool calls (the reply's total adds them)
        self.earlier = Usage()
        #: each such request's ``tool_calls`` rows and ``api_calls`` row, stored at the end
        self.rounds: list[tuple[tuple[dict[str, Any], ...], dict[str, Any]]] = []

    def _elapsed_ms(self, since: float | None = None) -> int:
        return int((time.monotonic() - (since or self.started)) * 1000)

    def _call_row(self, status: str, **values: Any) -> dict[str, Any]:
        return {
            "message_id": self.reply.id,
            "session_id": self.reply.session_id,
            "user_id": self.user_id,
            "provider": self.provider,
            "model": self.model,
            "started": self.attempt_at.isoformat(timespec="microseconds"),
            "latency_ms": max(0, self._elapsed_ms(self.attempt_started)),
            "first_token_ms": (
                max(0, int((self.first_token - self.attempt_started) * 1000))
                if self.first_token is not None
                else None
            ),
            "status": status,
            **values,
        }

    async def stream(
        self, provider: Provider, request: ChatRequest, tools: ToolLoop | None = None
    ) -> AsyncIterator[Event]:
        """Relay the provider's chunks as events, flushing the content as it grows.

        With ``tools``, its rounds: the tool calls' events, one provider request each.
        """
        last_flush = self.attempt_started = time.monotonic()
        self.attempt_at = datetime.now(UTC)
        flushed = 0
        chunks = provider.stream_chat(request) if tools is None else tools.chunks(provider, request)
        async for chunk in chunks:
            if isinstance(chunk, ToolCallStarted | ToolCallFinished):
                yield chunk
            elif isinstance(chunk, RoundEnded):
                self._round_ended(chunk)
            elif isinstance(chunk, TextChunk):
                if self.first_token is None:
                    self.first_token = time.monotonic()
                self.parts.append(chunk.text)
                if self.check is not None:
                    continue  # held until checked
                yield TextDelta(chunk.text)
                now = time.monotonic()
                if now - last_flush >= self.settings.flush_interval and len(self.parts) > flushed:
                    flushed = len(self.parts)
                    last_flush = self.renewed = now
                    # the flush carries the lease: no write of its own while text flows
                    await self.run(
                        self.store.update_message,
                        self.reply.id,
                        content="".join(self.parts),
                        lease_until=stamp(self.settings.lease),
                    )
            elif isinstance(chunk, UsageChunk):
                self.usage = Usage(chunk.prompt_tokens, chunk.completion_tokens)
                yield UsageReported(self.usage)
            elif isinstance(chunk, RetryChunk):
                await self.run(
                    self.store.add_api_call,
                    **self._call_row("retry", http_status=chunk.status, error=chunk.error),
                )
                yield Retrying(chunk.attempt, chunk.delay, chunk.error)
                # the provider sleeps ``delay`` once resumed, then tries again: the
                # next attempt's clock starts after that wait, not before it
                self.attempt_started = time.monotonic() + chunk.delay
                self.attempt_at = datetime.now(UTC) + timedelta(seconds=chunk.delay)
            elif isinstance(chunk, FinishChunk):
                self.finish_reason = chunk.reason
        if self.finish_reason is None:
            raise ProviderError(
                f"the reply from {self.provider} ended without a finish reason",
                kind="bad_response",
            )
        if self.check is not None:
            text = "".join(self.parts)
            try:
                await self.check(text)
            except ContentFlagged as error:
                yield await self.withhold(error)
                return
            if text:
                yield TextDelta(text)
        yield await self.complete()

    def _round_ended(self, ended: RoundEnded) -> None:
        """A request ended in tool calls: its rows wait for the reply's final writes (one
        transaction, no round trip per round); the next request's clock starts."""
        usage = ended.usage
        prompt = usage.prompt_tokens if usage else None
        completion = usage.completion_tokens if usage else None
        call = self._call_row(
            "ok", prompt_tokens=prompt, completion_tokens=completion, finish_reason="tool_calls"
        )
        self.rounds.append((ended.tool_calls, call))
        self.earlier = Usage(
            self._total(prompt, self.earlier.prompt_tokens),
            self._total(completion, self.earlier.completion_tokens),
        )
        self.usage = Usage()
        self.attempt_started = time.monotonic()
        self.attempt_at = datetime.now(UTC)

    @staticmethod
    def _total(mine: int | None, earlier: int | None) -> int | None:
        """A token count of the reply: this request's plus the tool rounds' before it."""
        return mine if earlier is None else (mine or 0) + earlier

    def renew_if_idle(self) -> None:
        """Push the lease forward unless a flush did lately (runs on the store thread)."""
        if self.done:
            return
        period = self.settings.lease.total_seconds() / 3
        if time.monotonic() - self.renewed < period:
            return
        self.renewed = time.monotonic()
        self.store.renew_reply_lease(self.reply.id, stamp(self.settings.lease))

    async def complete(self) -> Completed:
        """Store the reply as complete, with its usage and its api_calls row."""
        values = {
            "content": "".join(self.parts),
            "status": MessageStatus.COMPLETE.value,
            "tokens_in": self._total(self.usage.prompt_tokens, self.earlier.prompt_tokens),
            "tokens_out": self._total(self.usage.completion_tokens, self.earlier.completion_tokens),
            "latency_ms": self._elapsed_ms(),
            "finish_reason": self.finish_reason,
        }
        call = self._call_row(
            "ok",
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            finish_reason=self.finish_reason,
        )
        message = await self.run(self._finish, values, call)
        return Completed(message=message, usage=self.usage, prompt_tokens=self.prompt_tokens)

    async def fail(self, error: MschatError) -> Failed:
        """Store the reply as failed, keeping what arrived."""
        values = {
            "content": self._unchecked_text(),
            "status": MessageStatus.FAILED.value,
            "latency_ms": self._elapsed_ms(),
            "error": str(error),
            "tokens_in": self.usage.prompt_tokens,
            "tokens_out": self.usage.completion_tokens,
        }
        call = self._call_row(
            "error",
            http_status=getattr(error, "status", None),
            error=str(error),
            # a stream that failed after reporting usage was billed for it
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
        )
        message = await self.run(self._finish, values, call)
        return Failed(error=error, message=message)

    async def withhold(self, error: ContentFlagged) -> Failed:
        """Store the reply as flagged, without its text; its request (billed) is kept."""
        values = {
            "content": "",
            "status": MessageStatus.FLAGGED.value,
            "latency_ms": self._elapsed_ms(),
            "error": str(error),
            "tokens_in": self.usage.prompt_tokens,
            "tokens_out": self.usage.completion_tokens,
            "finish_reason": self.finish_reason,
        }
        call = self._call_row(
            "ok",
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            finish_reason=self.finish_reason,
        )
        message = await self.run(self._finish, values, call)
        return Failed(error=error, message=message)

    async def refuse(self, error: ContentFlagged, question_id: int) -> Failed:
        """The question was flagged before any chat request: both rows marked flagged.

        The question keeps its text; no provider request is recorded (none was made).
        """
        values: dict[str, Any] = {
            "status": MessageStatus.FLAGGED.value,
            "error": str(error),
            "latency_ms": 0,
        }

        def mark() -> Message:
            with self.store.write():
                self.store.update_message(question_id, status=MessageStatus.FLAGGED.value)
                self.store.update_message(self.reply.id, lease_until=None, **values)
                self.store.touch_session(self.reply.session_id)
            self.done = True
            return dataclasses.replace(self.reply, **values)

        return Failed(error=error, message=await self.run(mark))

    async def decline(self, error: MschatError) -> Failed:
        """The question was refused before any chat request (queue full, too old,
        paused): the reply is marked failed with the reason, no request recorded."""
        values: dict[str, Any] = {
            "status": MessageStatus.FAILED.value,
            "error": str(error),
            "latency_ms": 0,
        }

        def mark() -> Message:
            with self.store.write():
                self.store.update_message(self.reply.id, lease_until=None, **values)
                self.store.touch_session(self.reply.session_id)
            self.done = True
            return dataclasses.replace(self.reply, **values)

        return Failed(error=error, message=await self.run(mark))

    def interrupt(self) -> None:
        """Mark the reply interrupted, synchronously: the task is being cancelled."""
        if self.done:
            return
        values = {
            "content": self._unchecked_text(),
            "status": MessageStatus.INTERRUPTED.value,
            "latency_ms": self._elapsed_ms(),
            "finish_reason": "interrupted",
        }
        self._finish(values, self._call_row("interrupted"))

    def _unchecked_text(self) -> str:
        """What arrived of a reply that ends unchecked: nothing, while moderation holds it."""
        return "" if self.check is not None else "".join(self.parts)

    def _finish(self, values: dict[str, Any], call: dict[str, Any]) -> Message:
        """Final writes of a reply: the message row, its api_calls rows (and tool calls),
        the times."""
        if not self.rounds:
            self.store.finish_reply(self.reply.id, self.reply.session_id, values, call)
        else:
            with self.store.write():
                for tool_calls, request in self.rounds:
                    for row in tool_calls:
                        self.store.add_tool_call(**row)
                    self.store.add_api_call(**request)
                self.store.finish_reply(self.reply.id, self.reply.session_id, values, call)
        self.done = True
        return dataclasses.replace(self.reply, **values)
