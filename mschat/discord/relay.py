"""Stream one answer into Discord replies, editing at most once per interval.

The first part is sent as soon as text arrives; afterwards the visible text is
brought up to date by edits, never more often than ``interval`` seconds per
message. Beyond 2000 characters the text is split (``split.split_message``)
and further parts are sent as new replies to the same user message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import discord

from mschat.discord.split import DISCORD_LIMIT, close_open_fence, split_message

log = logging.getLogger("mschat.discord")

Send = Callable[[str, discord.ui.View | None], Awaitable[discord.Message]]


class ReplyStream:
    """The Discord side of one streamed answer."""

    def __init__(self, send: Send, *, interval: float, limit: int = DISCORD_LIMIT) -> None:
        self._send = send
        self.interval = interval
        self.limit = limit
        self.text = ""
        self.sent: list[discord.Message] = []
        self.shown: list[str] = []
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_flush = 0.0

    def feed(self, delta: str) -> None:
        """Add text; a background task brings Discord up to date."""
        self.text += delta
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name="mschat-reply-stream")

    async def _pump(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._flush(close_open_fence(self.text))
            pause = self._last_flush + self.interval - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)

    async def _stop_pump(self) -> None:
        # wait for a flush in progress: cancelling it could lose a sent message
        async with self._lock:
            task, self._task = self._task, None
            if task is not None and not task.done():
                task.cancel()
        if task is not None and not task.done():
            try:
                await task
            except asyncio.CancelledError:
                pass
        elif task is not None and not task.cancelled() and task.exception() is not None:
            log.warning("streaming a reply failed: %r", task.exception())

    async def _flush(self, text: str, view: discord.ui.View | None = None) -> None:
        """Send or edit the parts of ``text`` that differ from what Discord shows.

        ``view`` (final flush only) goes on the last part.
        """
        async with self._lock:
            parts = split_message(text, self.limit)
            edited = False
            for index, part in enumerate(parts):
                last_view = view if index == len(parts) - 1 else None
                if index < len(self.sent):
                    if self.shown[index] == part and last_view is not None:
                        # only the components change: not a streaming edit
                        await self.sent[index].edit(view=last_view)
                    elif self.shown[index] != part:
                        # at most one edit per interval for each message
                        if not edited and self._last_flush:
                            pause = self._last_flush + self.interval - time.monotonic()
                            if pause > 0:
                                await asyncio.sleep(pause)
                        if last_view is not None:
                            await self.sent[index].edit(content=part, view=last_view)
                        else:
                            await self.sent[index].edit(content=part)
                        self.shown[index] = part
                        edited = True
                else:
                    self.sent.append(await self._send(part, last_view))
                    self.shown.append(part)
            # a part that is no longer needed (the cut moved as text arrived) goes away
            while len(self.sent) > max(len(parts), 1):
                stale = self.sent.pop()
                self.shown.pop()
                await stale.delete()
            self._last_flush = time.monotonic()

    async def finish(
        self, suffix: str = "", view: discord.ui.View | None = None
    ) -> list[discord.Message]:
        """Stop streaming, show the final text (plus ``suffix``, with ``view`` on the last part)."""
        await self._stop_pump()
        text = self.text.rstrip()
        if suffix:
            text = close_open_fence(text) + suffix
        if not text.strip() and not self.sent:
            return []
        await self._flush(text, view)
        return self.sent
