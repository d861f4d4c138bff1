"""Gathering the core's events into one reply, and server-sent events for streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mschat.core.errors import MschatError
from mschat.core.events import (
    Completed,
    Event,
    Failed,
    HistoryTrimmed,
    Started,
    TextDelta,
    UsageReported,
)
from mschat.core.models import Usage


@dataclass
class Reply:
    """What one answer produced, gathered from the core's events."""

    session_id: int | None = None
    message_id: int | None = None
    model: str | None = None
    created_session: bool = False
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    error: MschatError | None = None
    trimmed: int = 0  # older turns left out of the prompt
    prompt_estimate: int = 0  # the core's own count of the prompt's tokens
    reset: bool = False  # the seed's "reset" command, not an answer

    @property
    def text(self) -> str:
        """The reply text so far."""
        return "".join(self.parts)

    def feed(self, event: Event) -> str | None:
        """Record an event; returns the text of a delta, else None."""
        if isinstance(event, Started):
            self.session_id = event.session.id
            self.message_id = event.reply_id
            self.model = event.model
            self.created_session = event.created_session
        elif isinstance(event, TextDelta):
            self.parts.append(event.text)
            return event.text
        elif isinstance(event, HistoryTrimmed):
            self.trimmed = event.dropped
        elif isinstance(event, UsageReported):
            self.usage = event.usage
        elif isinstance(event, Completed):
            self.usage = event.usage
            self.prompt_estimate = event.prompt_tokens
            self.finish_reason = event.message.finish_reason
        elif isinstance(event, Failed):
            self.error = event.error
        return None

    async def consume(
        self,
        first: Event | None,
        events: AsyncIterator[Event],
        relay: Callable[[Event], Awaitable[None]] | None = None,
    ) -> None:
        """Feed ``first`` and the rest of ``events`` (each passed to ``relay`` if given)."""
        if first is not None:
            if relay is None:
                self.feed(first)
            else:
                await relay(first)
        async for event in events:
            if relay is None:
                self.feed(event)
            else:
                await relay(event)


async def first_event(events: AsyncIterator[Event]) -> Event | None:
    """Pull the first event now: errors raised before anything is stored surface here.

    The core raises (disabled user, unknown session or model, empty text) before
    its first event, so a handler can still answer with a plain JSON error.
    """
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None


class EventStream:
    """A text/event-stream response that survives the client going away.

    When the client disconnects, writes stop but the caller keeps draining the
    core's events, so the reply is still stored complete in its session.
    """

    def __init__(self, request: web.Request, headers: dict[str, str] | None = None) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **(headers or {}),
            }
        )
        self.gone = False

    async def open(self) -> None:
        """Send the status line and headers."""
        await self.response.prepare(self.request)

    async def send(self, data: Any, event: str | None = None) -> None:
        """Send one event (``data`` is JSON-encoded unless it is already a string)."""
        if self.gone:
            return
        payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        text = f"event: {event}\n" if event else ""
        text += "".join(f"data: {line}\n" for line in payload.split("\n")) + "\n"
        try:
            await self.response.write(text.encode("utf-8"))
        except ConnectionError:
            self.gone = True

    async def close(self) -> web.StreamResponse:
        """Finish the response."""
        if not self.gone:
            try:
                await self.response.write_eof()
            except ConnectionError:
                self.gone = True
        return self.response
