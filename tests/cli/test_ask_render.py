"""The ask renderer on its own: events in, lines out."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from mschat.cli.ask_render import AskRenderer, TerminalText
from mschat.core.errors import QueueTimeout
from mschat.core.events import (
    Completed,
    Event,
    Failed,
    Queued,
    Started,
    TextDelta,
    WaitingForTurn,
)
from mschat.core.models import Usage
from tests.conftest import eventually


async def events(*items: Any) -> AsyncIterator[Event]:
    for item in items:
        yield item


async def test_waiting_for_another_process_is_one_line_on_stderr():
    out, err = io.StringIO(), io.StringIO()
    renderer = AskRenderer(out=out, err=err)
    started = Started(
        session=SimpleNamespace(id=7, title="Shared"),  # type: ignore[arg-type]
        user_message=SimpleNamespace(id=1),  # type: ignore[arg-type]
        reply_id=2,
        model="fake/fake-model",
        context_window=4096,
    )
    done = Completed(message=SimpleNamespace(id=2), usage=Usage(), prompt_tokens=3)  # type: ignore[arg-type]
    code = await renderer.consume(events(WaitingForTurn(7), started, TextDelta("Hello"), done))
    assert code == 0
    assert out.getvalue() == "Hello\n"
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and "waiting" in lines[0] and "session 7" in lines[0]


def test_a_carriage_return_split_across_pieces_is_a_line_end():
    text = TerminalText()
    shown = text.feed("one\r") + text.feed("\ntwo\r") + text.feed("three") + text.end()
    assert shown == "one\ntwo␍three"
    assert text.feed("end\r") + text.end() == "end␍"


async def test_waiting_in_the_queue_is_one_line_on_stderr():
    out, err = io.StringIO(), io.StringIO()
    renderer = AskRenderer(out=out, err=err)
    started = Started(
        session=SimpleNamespace(id=7, title="New"),  # type: ignore[arg-type]
        user_message=SimpleNamespace(id=1),  # type: ignore[arg-type]
        reply_id=2,
        model="fake/fake-model",
        context_window=4096,
    )
    done = Completed(message=SimpleNamespace(id=2), usage=Usage(), prompt_tokens=3)  # type: ignore[arg-type]
    queued = [Queued(0, "fake", 3), Queued(0, "fake", 1)]
    code = await renderer.consume(events(*queued, started, TextDelta("Hi"), done))
    assert code == 0
    # piped: one line per change of place
    assert err.getvalue().splitlines() == [
        "[Waiting in line: 2 ahead of you]",
        "[Waiting in line: yours is next]",
    ]


class Terminal(io.StringIO):
    """What a terminal receives (the spinner draws only on one)."""

    def isatty(self) -> bool:
        return True


async def test_on_a_terminal_the_place_in_line_is_the_spinners_line_updated():
    out, err = io.StringIO(), Terminal()
    renderer = AskRenderer(out=out, err=err)

    async def waiting() -> AsyncIterator[Event]:
        for position in (3, 2):
            event = Queued(0, "fake", position)
            yield event
            await eventually(lambda e=event: f"{e.text}\x1b[K" in err.getvalue())  # type: ignore[misc]
        yield Failed(error=QueueTimeout("waited too long"), message=None)

    assert await renderer.consume(waiting()) == 1
    before, error = err.getvalue().split("Error: ")
    # one line, redrawn in place: no line ends before the error's line
    assert "Waiting in line: 2 ahead of you" in before and "1 ahead of you" in before
    assert "\n" not in before and error == "waited too long\n"
