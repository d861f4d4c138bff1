"""The fair queue: questions wait for one of their provider's slots, in the database.

A question enters the queue (``Store.enqueue``) before it is stored, when the
queue is in use: its provider has ``max_concurrency``, or ``queue.size`` /
``queue.max_age`` is set, or answering is paused. Otherwise an ask costs no
queue write at all.

The database decides who runs (``Store.claim_queue``): at most
``providers.NAME.max_concurrency`` entries per provider, one per user, priority
users first, then the oldest. Every instance's dispatcher (one task per
process) claims for the whole deployment and watches the entries of its own
waiters, and their places in line (``Queued`` tells the asker each change), so
a slot freed anywhere is taken within :data:`POLL` seconds, and at once when it
was freed here. Every entry is leased to its process, which renews
it; a dead process's entries expire and free their slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mschat.config import Config
from mschat.core.answer.turns import Runner, stamp
from mschat.core.errors import Paused, QueueFull, QueueTimeout
from mschat.core.events import Queued
from mschat.core.models import User
from mschat.store.contract import QueuePlace, Store

log = logging.getLogger(__name__)

#: users whose (empty) lines of tickets are kept before the empty ones are forgotten
LINES_KEPT = 1000
#: seconds between two looks at the database while entries of this process wait
POLL = 0.05
#: seconds between two counts of the places in line (a free slot is looked for every POLL)
PLACES_EVERY = 0.25


@dataclass(frozen=True, slots=True)
class QueueRules:
    """The queue settings in effect for one provider (read at every ask: live)."""

    size: int | None = None
    max_age: float | None = None
    paused: bool = False
    hold: bool = False
    max_running: int | None = None

    @property
    def active(self) -> bool:
        """Whether a question for this provider goes through the queue."""
        return (
            self.size is not None
            or self.max_age is not None
            or self.max_running is not None
            or self.paused
        )


def queue_rules(config: Config, provider: str) -> QueueRules:
    """The queue settings of ``config`` for a provider (live settings included)."""
    section = config.sections.get("queue", {})
    limits = config.providers.get(provider)
    return QueueRules(
        size=section.get("size"),
        max_age=section.get("max_age"),
        paused=bool(section.get("paused")),
        hold=section.get("when_paused") == "hold",
        max_running=limits.max_concurrency if limits is not None else None,
    )


class Ticket:
    """A question's rank among its user's questions in this process, taken when asked.

    The database orders a user's entries by id; the steps before the entry is
    written (checks, routing: store calls on several threads) may finish out of
    order, so a question enters the queue only after the user's earlier ones.
    """

    def __init__(self, line: list[Ticket]) -> None:
        self._line = line
        self._first = asyncio.Event()
        line.append(self)
        if line[0] is self:
            self._first.set()

    async def ready(self) -> None:
        """Wait until the user's earlier questions entered the queue (or gave up)."""
        await self._first.wait()

    def done(self) -> None:
        """This question entered the queue, or will not: the next one may enter."""
        if self in self._line:
            self._line.remove(self)
            if self._line:
                self._line[0]._first.set()

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()


class Place:
    """One question's entry in the queue, from its wait to the end of its answer."""

    def __init__(self, queue: Queue, user: User, provider: str, ticket: Ticket) -> None:
        self.queue = queue
        self.user = user
        self.provider = provider
        self.ticket = ticket
        self.entry: int | None = None
        #: waiting, running or gone (its lease ended: this process was too slow)
        self.state = "waiting"
        #: its place in its provider's line while waiting (1 = next; 0: not known yet)
        self.position = 0
        self.moved = asyncio.Event()

    async def wait(self, session_id: int, rules: QueueRules) -> AsyncGenerator[Queued, None]:
        """Wait for a slot; yields ``Queued`` if none is free at once, and again
        whenever the place in line changes.

        Raises ``Paused`` (paused, ``when_paused = reject``), ``QueueFull`` or
        ``QueueTimeout``; then this place is already left.
        """
        queue = self.queue
        entered = datetime.now(UTC)
        with self.ticket:  # whatever happens, the user's next question may enter after
            if rules.paused and not rules.hold:
                raise Paused("answering is paused; ask again later")
            await self.ticket.ready()
            self.entry = await queue.run(
                queue.store.enqueue,
                self.user.id,
                self.provider,
                self.user.priority,
                stamp(),
                stamp(queue.lease),
                rules.size,
            )
        if self.entry is None:
            raise QueueFull(f"the queue is full ({rules.size} waiting); ask again later")
        queue.join(self)
        told: int | None = None  # the position last told
        while self.state == "waiting":
            timeout = None
            if rules.max_age is not None:
                waited = (datetime.now(UTC) - entered).total_seconds()
                timeout = rules.max_age - waited
                if timeout <= 0:
                    await self.leave()
                    raise QueueTimeout(
                        f"the question waited {rules.max_age:g} s in the queue without "
                        "a free slot; ask again later"
                    )
            if told is None:  # a free slot is taken within a poll: then say it waits
                timeout = POLL if timeout is None else min(POLL, timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.moved.wait(), timeout)
            self.moved.clear()
            if self.state == "waiting" and self.position != told:
                told = self.position  # 0 at first when the line was not counted yet
                yield Queued(session_id, self.provider, self.position)
        if self.state == "gone":
            await self.leave()
            raise QueueTimeout("the question lost its place in the queue; ask again")

    async def leave(self) -> None:
        """Give the entry back (answered or refused): its slot is free."""
        entry, self.entry = self.entry, None
        if entry is not None:
            self.queue.part(self)
            await self.queue.run(self.queue.store.leave_queue, entry)

    def leave_now(self) -> None:
        """Give the entry back synchronously: the task is being cancelled."""
        entry, self.entry = self.entry, None
        if entry is not None:
            self.queue.part(self)
            with contextlib.suppress(Exception):
                self.queue.store.leave_queue(entry)


class Queue:
    """This process's places in the database's queue, and the task that moves them."""

    def __init__(
        self, store: Store, run: Runner, config: Callable[[], Config | None], lease: timedelta
    ) -> None:
        self.store = store
        self.run = run
        self.config = config
        self.lease = lease
        self._places: dict[int, Place] = {}
        self._lines: dict[int, list[Ticket]] = {}
        self._kick = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        #: when the places in line were last counted (the event loop's time)
        self._counted = float("-inf")

    def rules(self, provider: str) -> QueueRules:
        """The queue settings in effect for a provider (none without a config)."""
        config = self.config()
        return queue_rules(config, provider) if config is not None else QueueRules()

    def ticket(self, user_id: int) -> Ticket:
        """Rank a question among its user's questions in this process (when it is asked)."""
        line = self._lines.setdefault(user_id, [])
        ticket = Ticket(line)
        if len(self._lines) > LINES_KEPT:  # forget the users who have no question waiting
            for known in [k for k, v in self._lines.items() if not v]:
                del self._lines[known]
        return ticket

    def place(self, user: User, provider: str, ticket: Ticket | None = None) -> Place:
        """A place for a user's question, not in the queue yet (see :meth:`Place.wait`)."""
        return Place(self, user, provider, ticket or self.ticket(user.id))

    def join(self, place: Place) -> None:
        """Watch a place that just entered the queue."""
        assert place.entry is not None
        self._places[place.entry] = place
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a manager may serve one event loop after another
            self._loop, self._kick, self._task = loop, asyncio.Event(), None
        self._kick.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._dispatch(), name="mschat-queue")

    def part(self, place: Place) -> None:
        """Stop watching a place; a slot it held may go to a waiting one."""
        for entry, known in list(self._places.items()):
            if known is place:
                del self._places[entry]
        self._kick.set()

    async def _dispatch(self) -> None:
        """Claim free slots and follow this process's entries while it has any."""
        renewed = asyncio.get_running_loop().time()
        period = self.lease.total_seconds() / 3
        while self._places:
            self._kick.clear()
            try:
                now = asyncio.get_running_loop().time()
                if now - renewed >= period:
                    renewed = now
                    await self.run(self.store.renew_queue, list(self._places), stamp(self.lease))
                await self._move()
            except Exception as exc:  # the database is away: try again at the next poll
                log.warning("queue not read: %s", exc)
            if any(place.state == "waiting" for place in self._places.values()):
                timeout = POLL
            else:
                timeout = period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout)

    async def _move(self) -> None:
        """Claim for the providers this process waits for; tell the places that moved."""
        waiting = {e: p for e, p in self._places.items() if p.state == "waiting"}
        if not waiting:
            return
        for provider in sorted({place.provider for place in waiting.values()}):
            rules = self.rules(provider)
            if rules.paused:
                continue
            claimed = await self.run(
                self.store.claim_queue, provider, rules.max_running, stamp(), stamp(self.lease)
            )
            for entry in claimed:
                if entry in waiting:
                    waiting.pop(entry).state = "running"
                    self._places[entry].moved.set()
        if not waiting:
            return
        now = asyncio.get_running_loop().time()
        if now - self._counted >= PLACES_EVERY:
            # counting places reads the whole line: not at every poll
            self._counted = now
            places = await self.run(self.store.queue_places, list(waiting), stamp())
        else:
            states = await self.run(self.store.queue_states, list(waiting))
            places = {e: QueuePlace(s, waiting[e].position) for e, s in states.items()}
        for entry, place in waiting.items():
            state, position = places.get(entry, ("gone", 0))
            if state != "waiting":
                place.state = state
                place.moved.set()
            elif position != place.position:
                place.position = position
                place.moved.set()


@dataclass(frozen=True, slots=True)
class QueueState:
    """The whole deployment's queue now (``manager.queue_status``)."""

    #: answering is paused (``mschat ops pause``)
    paused: bool
    #: what new questions get while paused: ``reject`` or ``hold``
    when_paused: str
    #: questions waiting for a slot
    waiting: int
    #: answers running, by provider
    running: dict[str, int]
    #: seconds the oldest waiting question has waited (None: none waits)
    oldest_wait: float | None

    def as_json(self) -> dict[str, object]:
        """Machine-readable, as ``mschat ops status --json`` prints it."""
        return {
            "paused": self.paused,
            "when_paused": self.when_paused,
            "waiting": self.waiting,
            "running": dict(self.running),
            "oldest_wait_s": None if self.oldest_wait is None else round(self.oldest_wait, 1),
        }
