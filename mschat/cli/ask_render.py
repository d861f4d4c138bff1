"""Rendering the core's events for ``mschat ask`` (rich on a terminal, plain when piped).

On a terminal the reply is outside text: it is shown through :func:`visible`,
so a model cannot clear the screen, set the title or write the clipboard.
Piped or redirected, the reply is written byte for byte.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from mschat.cli.output import is_terminal, json_text
from mschat.cli.spinner import Spinner
from mschat.core.errors import ContentFlagged
from mschat.core.events import (
    Completed,
    Event,
    Failed,
    HistoryTrimmed,
    Queued,
    Retrying,
    Started,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
    WaitingForTurn,
)
from mschat.core.models import Usage
from mschat.visible import visible


class TerminalText:
    """Outside text streamed to a terminal, piece by piece, made visible.

    A carriage return at the end of a piece waits for the next one: with a
    newline after it, it is a plain line end, else it would let text overwrite
    its line and is shown.
    """

    def __init__(self) -> None:
        self._cr = False

    def feed(self, text: str) -> str:
        """The visible form of the next piece."""
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._cr = True
        return visible(text)

    def end(self) -> str:
        """What is still held back."""
        held, self._cr = self._cr, False
        return visible("\r") if held else ""


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
        #: the answer's tool calls, for --json
        self.tools: list[dict[str, Any]] = []
        self.started: Started | None = None
        self.usage = Usage()
        self.terminal = is_terminal(self.out)
        self.rich = stream and self.terminal
        self.spinner = Spinner(self.err)
        self._text = TerminalText()
        self._live: Any = None
        self._at_line_start = True

    def _note(self, text: str) -> None:
        self.spinner.clear()
        print(visible(text, newlines=False), file=self.err, flush=True)

    def _tool(self, event: ToolCallFinished) -> None:
        """One line per tool call on stderr: what ran, how it ended, and why if denied."""
        self.tools.append(
            {
                "server": event.server,
                "tool": event.tool,
                "status": event.status,
                "duration_ms": event.duration_ms,
            }
        )
        line = f"[tool {event.server}/{event.tool}: {event.status}"
        if event.status != "denied":
            line += f" in {event.duration_ms} ms"
        self._note(line + (f"; {event.notice}]" if event.notice else "]"))

    def _queued(self, event: Queued) -> None:
        """The place in line: the spinner's line on a terminal (updated), else a line."""
        if self.spinner.enabled:
            self.spinner.label = event.text
        else:
            self._note(f"[{event.text}]")

    async def consume(self, events: AsyncIterator[Event]) -> int:
        """Render every event; 0 when the reply completed, 1 when it failed."""
        code = 1
        self.spinner.start()
        try:
            async for event in events:
                if isinstance(event, Queued):
                    self._queued(event)
                elif isinstance(event, WaitingForTurn):
                    self._note(
                        f"[waiting: another reply is being written in session "
                        f"{event.session_id}; yours follows]"
                    )
                elif isinstance(event, Started):
                    self.started = event
                    self.spinner.label = f"waiting for {visible(event.model, newlines=False)}"
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
                elif isinstance(event, ToolCallStarted):
                    self.spinner.label = f"running tool {event.server}/{event.tool}"
                elif isinstance(event, ToolCallFinished):
                    self._tool(event)
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
                        "flagged" if isinstance(event.error, ContentFlagged) else "failed",
                        event.message.id if event.message else None,
                        error=str(event.error),
                    )
                    if not self.as_json:
                        self._note(f"Error: {event.error}")
                    code = 1
        finally:
            self.spinner.stop()
            self._stop_live()
        return code

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self._at_line_start = text.endswith("\n")

    def _delta(self, text: str) -> None:
        if not self.stream:
            return
        self.spinner.stop()
        if self.rich:
            if self._live is None:
                from mschat.cli.live_markdown import LiveMarkdown

                self._live = LiveMarkdown(self.out)
            self._live.feed(self._text.feed(text))
        else:
            self._write(text)  # piped: byte for byte

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.feed(self._text.end())
            self._live.close()
            self._live = None

    def _end(self) -> None:
        """The reply is over: print it (--no-stream) or finish its last line."""
        self.spinner.stop()
        if self._live is not None:
            self._stop_live()
        elif self.as_json:
            return
        elif not self.stream:
            text = "".join(self.parts)
            self._write(visible(text) if self.terminal else text)
        if not self._at_line_start:
            self._write("\n")

    def _summary(self, status: str, message_id: int | None, error: str | None = None) -> None:
        if self.as_json:
            started = self.started
            data: dict[str, Any] = {
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
            if self.tools:
                data["tool_calls"] = self.tools
            if error:
                data["error"] = error
            self._write(json_text(data, indent=None) + "\n")
        if self.show_usage:
            self._note(
                f"Token usage: {self.usage.prompt_tokens or 0} input, "
                f"{self.usage.completion_tokens or 0} output"
                + (f" (session {self.started.session.id})" if self.started else "")
            )

    def interrupted(self) -> None:
        """Called once after Ctrl-C or SIGTERM: one notice, the partial reply shown once."""
        self.spinner.stop()
        self._stop_live()
        if not self._at_line_start:
            self._write("\n")
        if self.started is None:
            self._note("Interrupted.")
            return
        if self.as_json:
            self._summary("interrupted", None)
        self._note("[interrupted: the partial reply is stored]")
