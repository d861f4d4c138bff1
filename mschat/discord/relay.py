"""Stream one answer into Discord replies, editing at most once per interval.

The first part is sent as soon as text arrives; afterwards the visible text is
brought up to date by edits, never more often than ``interval`` seconds per
message. Beyond 2000 characters the text is split (``split.split_message``)
and further parts are sent as new replies to the same user message.

Every call goes through the channel's :class:`~mschat.discord.lanes.Lane` and
is built when the lane lets it go: while the channel is busy, the text that
arrived meanwhile (and, once the answer is complete, its buttons) go out in
one call instead of several. Sending a part and the final text are the
answer itself and go first; streaming edits wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import discord

from mschat.discord.lanes import ANSWER, STREAMING, Lane
from mschat.discord.split import DISCORD_LIMIT, close_open_fence, split_message

log = logging.getLogger("mschat.discord")

#: seconds the first part waits for its answer to complete: a short answer then goes out
#: once, whole and with its buttons, instead of being sent and edited at once
FIRST_PART_GRACE = 0.05

Send = Callable[[str, discord.ui.View | None], Awaitable[discord.Message]]


class ReplyStream:
    """The Discord side of one streamed answer."""

    def __init__(
        self,
        send: Send,
        *,
        interval: float,
        lane: Lane | None = None,
        limit: int = DISCORD_LIMIT,
        head: str = "",
    ) -> None:
        self._send = send
        self.head = head  # shown before the answer's text (a slash command's question)
        self.interval = interval
        self.lane = lane or Lane()
        self.limit = limit
        self.text = ""
        self.sent: list[discord.Message] = []
        self.shown: list[tuple[str, bool]] = []  # each part's text, and whether it has the view
        self._final: tuple[str, discord.ui.View | None] | None = None
        self._finishing = asyncio.Event()
        self._waited = False  # the first part waited its grace already
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_call = 0.0

    def feed(self, delta: str) -> None:
        """Add text; a background task brings Discord up to date."""
        self.text += delta
        self._dirty.set()
        self._start()

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name="mschat-reply-stream")

    def _target(self) -> tuple[list[str], discord.ui.View | None]:
        """The parts Discord should show now, and the view of the last one."""
        if self._final is not None:
            text, view = self._final
        else:
            text, view = close_open_fence(self.text), None
        if not text.strip():
            return [], view
        return split_message(self.head + text, self.limit), view

    def _next(self) -> str | None:
        """What the next call would be: "send", "edit", "delete", or None when up to date."""
        parts, view = self._target()
        for index, part in enumerate(parts):
            if index >= len(self.sent):
                return "send"
            wants_view = view is not None and index == len(parts) - 1
            text, has_view = self.shown[index]
            if text != part or (wants_view and not has_view):
                return "edit"
        if len(self.sent) > max(len(parts), 1):
            return "delete"
        return None

    def _priority(self) -> int:
        """Sending, deleting and the final text are the answer; streaming edits can wait."""
        return ANSWER if self._final is not None or self._next() != "edit" else STREAMING

    async def _pump(self) -> None:
        while True:
            step = self._next()
            if step is None:
                if self._final is not None:
                    return
                self._dirty.clear()
                await self._dirty.wait()
                continue
            if step == "send" and not self.sent and not self._waited:
                self._waited = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finishing.wait(), FIRST_PART_GRACE)
                continue
            if step == "edit":
                # at most one edit per interval for each message
                pause = self._last_call + self.interval - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            try:
                await self.lane.run(self._priority, self._apply)
            except discord.HTTPException as exc:
                if self._final is not None:
                    raise
                # a streaming call Discord refused: the final text tries again
                log.warning("streaming a reply failed: %s", exc)
                self._dirty.clear()
                await self._dirty.wait()

    async def _apply(self) -> None:
        """Make the one call that brings Discord closer to the text as it is now."""
        parts, view = self._target()
        for index, part in enumerate(parts):
            last_view = view if index == len(parts) - 1 else None
            if index >= len(self.sent):
                message = await self._send(part, last_view)
                self.sent.append(message)
                self.shown.append((part, last_view is not None))
                self._last_call = time.monotonic()
                return
            text, has_view = self.shown[index]
            if text == part and (last_view is None or has_view):
                continue
            if last_view is not None and text == part:
                await self.sent[index].edit(view=last_view)  # only the components change
            elif last_view is not None:
                await self.sent[index].edit(content=part, view=last_view)
            else:
                await self.sent[index].edit(content=part)
            self.shown[index] = (part, has_view or last_view is not None)
            self._last_call = time.monotonic()
            return
        # a part that is no longer needed (the cut moved as text arrived) goes away
        if len(self.sent) > max(len(parts), 1):
            stale = self.sent.pop()
            self.shown.pop()
            await stale.delete()

    async def finish(
        self, suffix: str = "", view: discord.ui.View | None = None
    ) -> list[discord.Message]:
        """Stop streaming, show the final text (plus ``suffix``, with ``view`` on the last part)."""
        text = self.text.rstrip()
        if suffix:
            text = close_open_fence(text) + suffix
        self._final = (text, view)
        self._finishing.set()
        if not text.strip() and not self.sent:
            if self._task is not None:
                self._dirty.set()
                await self._task
            return []
        self._dirty.set()
        self._start()
        assert self._task is not None
        await self._task
        return self.sent
