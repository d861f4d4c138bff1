"""Gathering the core's events into one reply, and server-sent events for streams."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from mschat.api.errors import ApiError, dump_json, from_mschat
from mschat.core.events import (
    Completed,
    Event,
    Failed,
    HistoryTrimmed,
    Started,
    TextDelta,
    UsageReported,
    WaitingForTurn,
)
from mschat.core.models import Usage

#: the SSE comment a stream sends while its question waits for another answer to finish
WAITING = "waiting for another answer in this session to finish"


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
    error: ApiError | None = None
    trimmed: int = 0  # older turns left out of the prompt
    prompt_estimate: int = 0  # the core's own count of the prompt's tokens
    reset: bool = False  # the "reset" command, not an answer
    created: int = field(default_factory=lambda: int(time.time()))  # /v1's timestamp

    @property
    def text(self) -> str:
        """The reply text so far."""
        return "".join(self.parts)

    def feed(self, event: Event) -> str | None:
        """Record an event; returns the text of a delta, else None."""
        if isinstance(event, WaitingForTurn):
            self.session_id = event.session_id
        elif isinstance(event, Started):
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
            self.error = from_mschat(event.error)
        return None

    def to_json(self) -> str:
        """The reply as JSON text, to answer a retry with it later (``of_json``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["parts"] = [self.text]
        data["usage"] = None if self.usage is None else asdict(self.usage)
        error = self.error
        data["error"] = None if error is None else [error.status, error.message, error.code]
        return json.dumps(data)

    @classmethod
    def of_json(cls, text: str) -> Reply:
        """A reply recorded by ``to_json``."""
        data = json.loads(text)
        usage = data.pop("usage")
        error = data.pop("error")
        return cls(
            **data,
            usage=Usage(**usage) if usage is not None else None,
            error=ApiError(error[0], error[1], code=error[2]) if error is not None else None,
        )

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

    async def send(self, data: BaseModel | dict[str, Any] | str, event: str | None = None) -> None:
        """Send one event (``data`` is JSON-encoded unless it is already a string)."""
        payload = data.encode("utf-8") if isinstance(data, str) else dump_json(data)
        head = f"event: {event}\n".encode() if event else b""
        lines = b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n"))
        await self._write(head + lines + b"\n")

    async def comment(self, text: str) -> None:
        """Send an SSE comment line: clients ignore it, but it shows the stream is alive."""
        await self._write(f": {text}\n\n".encode())

    async def _write(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            await self.response.write(data)
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
