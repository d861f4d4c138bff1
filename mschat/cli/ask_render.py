"""Rendering the core's events for ``mschat ask`` (rich on a terminal, plain when piped)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from mschat.core.events import (
    Completed,
    Event,
    Failed,
    HistoryTrimmed,
    Retrying,
    Started,
    TextDelta,
    UsageReported,
)
from mschat.core.models import Usage


class AskRenderer:
    """Consumes one ask's events; returns the exit code."""

    def __init__(
        self,
        *,
        stream: bool = True,
        as_json: bool = False,
        show_usage: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.stream = stream
        self.as_json = as_json
        self.show_usage = show_usage
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.parts: list[str] = []
        self.started: Started | None = None
        self.usage = Usage()
        self.rich = stream and self.out.isatty()
        self._live: Any = None

    def _note(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    async def consume(self, events: AsyncIterator[Event]) -> int:
        """Render every event; 0 when the reply completed, 1 when it failed."""
        code = 1
        try:
            async for event in events:
                if isinstance(event, Started):
                    self.started = event
                    self._begin()
                elif isinstance(event, TextDelta):
                    self.parts.append(event.text)
                    self._delta(event.text)
                elif isinstance(event, HistoryTrimmed):
                    self._note(
                        f"[history trimmed: {event.dropped} older message(s) left out to fit "
                        f"{event.budget} tokens]"
                    )
                elif isinstance(event, Retrying):
                    self._note(f"[retrying in {event.delay:.1f}s: {event.error}]")
                elif isinstance(event, UsageReported):
                    self.usage = event.usage
                elif isinstance(event, Completed):
                    self.usage = event.usage if event.usage.total_tokens else self.usage
                    self._end()
                    self._summary("complete", event.message.id)
                    code = 0
                elif isinstance(event, Failed):
                    self._end()
                    self._summary(
                        "failed",
                        event.message.id if event.message else None,
                        error=str(event.error),
                    )
                    if not self.as_json:
                        self._note(f"Error: {event.error}")
                    code = 1
        finally:
            self._stop_live()
        return code

    def _begin(self) -> None:
        if self.rich:
            from mschat.cli.live_markdown import LiveMarkdown

            self._live = LiveMarkdown(self.out)

    def _delta(self, text: str) -> None:
        if not self.stream:
            return
        if self._live is not None:
            self._live.feed(text)
        else:
            self.out.write(text)
            self.out.flush()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.close()
            self._live = None

    def _end(self) -> None:
        text = "".join(self.parts)
        if self._live is not None:
            self._stop_live()
        elif self.as_json:
            return
        elif not self.stream:
            self.out.write(text)
            if text and not text.endswith("\n"):
                self.out.write("\n")
        elif text and not text.endswith("\n"):
            self.out.write("\n")
        self.out.flush()

    def _summary(self, status: str, message_id: int | None, error: str | None = None) -> None:
        if self.as_json:
            started = self.started
            data = {
                "reply": "".join(self.parts),
                "status": status,
                "session_id": started.session.id if started else None,
                "session_title": started.session.title if started else None,
                "message_id": message_id,
                "model": started.model if started else None,
                "usage": {
                    "prompt_tokens": self.usage.prompt_tokens,
                    "completion_tokens": self.usage.completion_tokens,
                    "total_tokens": self.usage.total_tokens,
                },
            }
            if error:
                data["error"] = error
            self.out.write(json.dumps(data, ensure_ascii=False) + "\n")
            self.out.flush()
        if self.show_usage:
            self._note(
                f"Token usage: {self.usage.prompt_tokens or 0} input, "
                f"{self.usage.completion_tokens or 0} output"
                + (f" (session {self.started.session.id})" if self.started else "")
            )

    def interrupted(self) -> None:
        """Called after Ctrl-C: finish the line so the partial reply stays readable."""
        self._stop_live()
        if self.parts and not self.as_json:
            self.out.write("\n")
            self.out.flush()
        if self.as_json:
            self._summary("interrupted", None)
        self._note("[interrupted: the partial reply is stored]")
