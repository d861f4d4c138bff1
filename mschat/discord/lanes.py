"""The bot's REST calls per channel: the answers first, everything cosmetic best effort.

Discord counts a channel's calls in buckets: sending and editing messages share
one (about 5 per 5 s), reactions another (about 1 per 0.25 s). discord.py
waits for a bucket inside the call, so a call queued there goes out with the
payload it had when it was queued. mschat queues its calls one step earlier,
per channel, in a :class:`Lane`: a few calls are in flight at a time, a
call's payload is computed when it leaves the lane (so a stream's edits
coalesce while the channel is busy), and the most urgent call goes first (an
answer's messages before streaming edits).

Reactions go through a :class:`ReactionLane`: each question says which marks
it wants (✍🏻 while it is answered, ⏳ while it waits, then 👌 or ❌) and the
lane makes the fewest calls that get there. When questions queue up faster
than the bucket allows, marks that no longer help are skipped rather than
queued behind everything else: a ✍🏻 whose answer is already out, the removal
of ✍🏻 before the final mark.

A channel's events all reach one shard, hence one process: this state is
per process on purpose and needs no sharing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

log = logging.getLogger("mschat.discord")

T = TypeVar("T")

#: priorities of message calls (lower goes first)
ANSWER = 0
STREAMING = 1
#: calls one channel's lanes have in flight at most (more wait in mschat, where they coalesce)
MESSAGE_SLOTS = 4
REACTION_SLOTS = 2
#: a call slower than this and than SLOWER times the usual waited for its bucket:
#: the lane lets one call out at a time
SLOW_CALL = 0.2
SLOWER = 4
#: quick calls in a row after which a lane lets out several again
WIDEN_AFTER = 5
#: questions waiting for reactions in one channel beyond which only final marks are made
PRESSURE = 4
#: questions one channel's reaction lane remembers at most (the oldest are given up)
BACKLOG = 200

WRITING = "✍🏻"
DONE = "👌"
FAILED = "❌"
WAITING = "⏳"


class Width:
    """How many calls a lane lets out at once: one while Discord makes them wait, more when not.

    discord.py waits for an exhausted bucket inside the call, so a call much slower
    than the usual round trip means the channel is throttled: then one call at a
    time, each built when it goes (what waits in mschat still coalesces). After a
    run of quick calls, up to ``most`` at once, so a channel that Discord does not
    throttle is not queued. A busy machine or a slow network slows every call
    alike: that is not taken for throttling.
    """

    def __init__(self, most: int) -> None:
        self.most = most
        self.now = 1
        self._quick = 0
        self._usual = 0.0  # a running average of the quick calls' times

    def took(self, seconds: float) -> None:
        """Record how long a call took."""
        if seconds > max(SLOW_CALL, SLOWER * self._usual):
            self.now, self._quick = 1, 0
            return
        self._usual = seconds if not self._usual else 0.8 * self._usual + 0.2 * seconds
        self._quick += 1
        if self._quick >= WIDEN_AFTER:
            self.now = self.most


class Lane:
    """One channel's message calls: the most urgent first, each built when it goes."""

    def __init__(self, slots: int = MESSAGE_SLOTS) -> None:
        self.width = Width(slots)
        self._running = 0
        self._waiting: list[tuple[int, Callable[[], int], asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def idle(self) -> bool:
        """Nothing runs or waits."""
        return not self._running and not self._waiting

    async def run(self, priority: int | Callable[[], int], call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()`` when its turn comes (``priority`` is asked again at every turn).

        Cancelled while waiting, nothing is sent. Once started, the call runs to its end
        even if the caller is cancelled, so whatever it records is never half done.
        """
        urgency = priority if callable(priority) else (lambda: priority)
        if self._running >= self.width.now or self._waiting:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (next(self._order), urgency, turn)
            self._waiting.append(entry)
            try:
                await turn
            except asyncio.CancelledError:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                elif turn.done() and not turn.cancelled():
                    self._done()  # the turn was given just now: pass it on
                raise
        else:
            self._running += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.ensure_future(call())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                await asyncio.wait([task])
            raise
        finally:
            self.width.took(loop.time() - started)
            self._done()

    def _done(self) -> None:
        """A call is over: give free slots to the most urgent calls waiting."""
        self._running -= 1
        while self._waiting and self._running < self.width.now:
            entry = min(self._waiting, key=lambda e: (e[1](), e[0]))
            self._waiting.remove(entry)
            self._running += 1
            entry[2].set_result(None)


class Marks:
    """The reactions the bot wants on one question, and those it has put there."""

    def __init__(self, message: discord.Message, me: discord.abc.Snowflake) -> None:
        self.message = message
        self.me = me
        self.placed: list[str] = []
        self.working = True
        self.waiting = False
        self.final: str | None = None
        self.skipped = False  # ✍🏻 came too late to help: never put it now

    def next_call(self, pressure: bool) -> tuple[str, bool] | None:
        """The next (emoji, add) call towards the wanted marks; None when nothing is left."""
        transient = [e for e in (WAITING, WRITING) if e in self.placed]
        if self.final is not None:
            if pressure:
                # the final mark alone: the removals would queue behind other questions
                return None if self.final in self.placed else (self.final, True)
            if transient:
                return transient[0], False
            return None if self.final in self.placed else (self.final, True)
        if self.working and WRITING not in self.placed and not self.skipped:
            if pressure:
                self.skipped = True
            else:
                return WRITING, True
        if self.waiting and WAITING not in self.placed and not pressure:
            return WAITING, True
        if not self.waiting and WAITING in self.placed and not pressure:
            return WAITING, False
        return None

    def did(self, emoji: str, add: bool) -> None:
        """Record a call made (or given up: it is not tried again)."""
        if add and emoji not in self.placed:
            self.placed.append(emoji)
        elif not add and emoji in self.placed:
            self.placed.remove(emoji)


class ReactionLane:
    """One channel's reactions: a few calls at a time, ✍🏻 and ⏳ of waiting questions first.

    A ✍🏻 helps only while its question is answered, so it goes before the final
    marks of questions already answered, which can wait.
    """

    def __init__(
        self,
        finished: Callable[[ReactionLane], None] = lambda lane: None,
        *,
        slots: int = REACTION_SLOTS,
    ) -> None:
        self.width = Width(slots)
        self.pending: dict[int, Marks] = {}
        self._busy: set[int] = set()  # questions with a call in flight
        self._running = 0
        self._workers: set[asyncio.Task[None]] = set()  # references, so none is collected
        self._finished = finished
        self.done = asyncio.Event()
        self.done.set()

    def want(self, marks: Marks) -> None:
        """Bring ``marks`` about (queued behind the questions already waiting)."""
        self.pending.setdefault(marks.message.id, marks)
        while len(self.pending) > BACKLOG:
            del self.pending[next(iter(self.pending))]
        self.done.clear()
        idle = len(self.pending) - len(self._busy)
        for _ in range(min(self.width.now - self._running, idle)):
            self._running += 1
            worker = asyncio.create_task(self._work(), name="mschat-reactions")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    def _pick(self) -> tuple[Marks, tuple[str, bool]] | None:
        """The next call to make, and its question; questions with nothing left are dropped."""
        pressure = len(self.pending) > PRESSURE
        for answered in (False, True):
            for key, marks in list(self.pending.items()):
                if key in self._busy or (marks.final is not None) != answered:
                    continue
                call = marks.next_call(pressure)
                if call is None:
                    del self.pending[key]
                    continue
                return marks, call
        return None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._running <= self.width.now and (picked := self._pick()) is not None:
                marks, (emoji, add) = picked
                key = marks.message.id
                self._busy.add(key)
                started = loop.time()
                try:
                    if add:
                        await marks.message.add_reaction(emoji)
                    else:
                        await marks.message.remove_reaction(emoji, marks.me)
                except discord.HTTPException as exc:
                    log.debug("reaction %s on %s failed: %s", emoji, key, exc)
                finally:
                    self._busy.discard(key)
                    self.width.took(loop.time() - started)
                marks.did(emoji, add)
        finally:
            # no await between the last pick and here: want() sees the true count
            self._running -= 1
            if not self._running:
                self.done.set()
                self._finished(self)


class Lanes:
    """Every channel's lanes; a channel's lanes go away once nothing uses them."""

    def __init__(self) -> None:
        self._messages: weakref.WeakValueDictionary[int, Lane] = weakref.WeakValueDictionary()
        self._reactions: dict[int, ReactionLane] = {}

    def messages(self, channel_id: int) -> Lane:
        """The message lane of a channel."""
        lane = self._messages.get(channel_id)
        if lane is None:
            lane = self._messages[channel_id] = Lane()
        return lane

    def react(self, channel_id: int, marks: Marks) -> None:
        """Queue a question's marks in its channel's reaction lane."""
        lane = self._reactions.get(channel_id)
        if lane is None:

            def finished(done: ReactionLane) -> None:
                # a quiet channel's lane goes; a busy one has been given new marks meanwhile
                if self._reactions.get(channel_id) is done and not done.pending:
                    del self._reactions[channel_id]

            lane = self._reactions[channel_id] = ReactionLane(finished)
        lane.want(marks)

    async def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queued reactions; whether all were made."""
        waits = [lane.done.wait() for lane in self._reactions.values() if not lane.done.is_set()]
        if not waits:
            return True
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*waits)
        except TimeoutError:
            return False
        return True
