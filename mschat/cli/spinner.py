"""A spinner on a terminal's stderr while ``mschat ask`` waits for the reply."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
#: a reply that starts within this time shows no spinner at all (no flicker)
DELAY = 0.15
INTERVAL = 0.1
#: back to the start of the line and erase it: the spinner leaves nothing behind
ERASE = "\r\x1b[2K"


class Spinner:
    """Spins on ``stream`` until stopped, only when ``stream`` is a terminal.

    Anything else written to the terminal calls :meth:`clear` first; the next
    frame then draws the spinner again below it.
    """

    def __init__(self, stream: TextIO, label: str = "waiting for the reply") -> None:
        self.stream = stream
        self.label = label
        self.enabled = _is_terminal(stream)
        self._task: asyncio.Task[None] | None = None
        self._drawn = False
        self._paused = False

    def start(self) -> None:
        """Start spinning (on the running event loop) after a short delay."""
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._spin())

    async def _spin(self) -> None:
        await asyncio.sleep(DELAY)
        for frame in itertools.cycle(FRAMES):
            if not self._paused:
                self.stream.write(f"\r{frame} {self.label}\x1b[K")
                self.stream.flush()
                self._drawn = True
            await asyncio.sleep(INTERVAL)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No frame is drawn inside (the terminal asks the user something), then again."""
        self._paused = True
        self.clear()
        try:
            yield
        finally:
            self._paused = False

    def clear(self) -> None:
        """Erase the spinner's line if it is drawn (it comes back on the next frame)."""
        if self._drawn:
            self._drawn = False
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(ERASE)
                self.stream.flush()

    def stop(self) -> None:
        """Stop spinning for good and erase the line."""
        self.enabled = False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.clear()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
