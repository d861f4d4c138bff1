"""Streaming Markdown to a terminal without repeating lines in the scrollback.

rich's ``Live`` redraws its whole renderable; once a reply is taller than the
screen, every redraw leaves another copy of the top in the scrollback. So
finished Markdown blocks are printed once, for good, and ``Live`` only shows the
block still being written — cut to the last screenful.

Links are printed with their address (no terminal hyperlinks): a model's link
text must not hide where it leads.
"""

from __future__ import annotations

from typing import IO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment


def freeze_point(text: str) -> int:
    """Where the finished blocks of ``text`` end: after its last blank line outside a code fence.

    0 when no block is finished yet.
    """
    point = 0
    offset = 0
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        offset += len(line)
        if fence is None and not stripped and line.endswith("\n"):
            point = offset
    return point


class _Tail:
    """The last lines of a Markdown block that fit on the screen."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(Markdown(self.text, hyperlinks=False), options, pad=False)
        room = max(1, console.size.height - 1)
        for line in lines[-room:]:
            yield from line
            yield Segment.line()


class LiveMarkdown:
    """Feed text as it arrives; call ``close`` at the end (or on interruption)."""

    def __init__(self, file: IO[str]) -> None:
        self.console = Console(file=file)
        self._open = ""
        self._printed = False
        self._after_code = False
        self._live = Live(
            _Tail(""),
            console=self.console,
            refresh_per_second=12,
            transient=True,
            vertical_overflow="crop",
        )
        self._live.start()

    def feed(self, text: str) -> None:
        """Add text: finished blocks are printed for good, the open one is shown live."""
        self._open += text
        point = freeze_point(self._open)
        if point:
            done, self._open = self._open[:point], self._open[point:]
            self._print(done)
        self._live.update(_Tail(self._open))

    def close(self) -> None:
        """Print what is still open and stop the live display."""
        if self._live is None:
            return
        self._live.update(_Tail(""))
        self._live.stop()
        self._live = None  # type: ignore[assignment]
        if self._open.strip():
            self._print(self._open)
        self._open = ""

    def _print(self, blocks: str) -> None:
        # the blank line Markdown puts between blocks printed in separate calls
        # (a code block brings its own padding)
        fences = ("```", "~~~")
        if self._printed and not self._after_code and not blocks.lstrip().startswith(fences):
            self.console.print()
        self.console.print(Markdown(blocks, hyperlinks=False))
        self._printed = True
        self._after_code = blocks.rstrip().endswith(fences)
