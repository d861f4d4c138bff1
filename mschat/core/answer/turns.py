"""Taking turns in a session, within a process and across processes.

Inside one process an ``asyncio.Lock`` per session orders the asks; across
processes (the bot, the API, the TUI, the CLI) a lease row in the database
does, for public sessions only: they are the only ones several users ask in,
and the lease costs two more writes. The holder renews the lease while its
reply streams, and a process that dies simply lets it expire.

The same periodic renewal keeps the leases of whatever the turn writes (the
reply row, see ``writer.py``) alive while no content flush does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mschat.core.errors import Busy, DatabaseError
from mschat.core.events import WaitingForTurn
from mschat.core.models import Session
from mschat.store.contract import Store

#: how long a lease lasts without renewal (a dead holder blocks the session this long)
LEASE = timedelta(seconds=30)
#: how long an ask waits for another process's turn before giving up
WAIT = timedelta(minutes=5)
FIRST_POLL = 0.02
MAX_POLL = 0.5

#: runs a blocking store call on the store thread
Runner = Callable[..., Awaitable[Any]]


def new_owner() -> str:
    """A name for this process's leases, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def stamp(delta: timedelta = timedelta(0)) -> str:
    """The stored form of now plus ``delta`` (leases compare these as text)."""
    return (datetime.now(UTC) + delta).isoformat(timespec="microseconds")


class Turns:
    """The turns of every session this process answers in."""

    def __init__(self, store: Store, run: Runner, owner: str, *, lease: timedelta = LEASE) -> None:
        self.store = store
        self.run = run
        self.owner = owner
        self.lease = lease
        #: lease private sessions too (``SessionManager.share_turns``)
        self.every_session = False
        self._locks: dict[int, asyncio.Lock] = {}

    def lock(self, session_id: int) -> asyncio.Lock:
        """This process's lock of a session (also held by other writes of its messages)."""
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    def turn(self, session: Session | None) -> Turn:
        """A turn in ``session``, not taken yet (None: a session the ask will create)."""
        return Turn(self, session)


class Turn:
    """One ask's turn: taken before its question is stored, given back after its reply.

    Use as::

        turn = turns.turn(session)
        try:
            async with contextlib.aclosing(turn.take()) as waits:
                async for waiting in waits:
                    yield waiting  # at most one WaitingForTurn
            ...  # store the question, stream the reply
        except BaseException:
            turn.release_now()  # cancelled: no awaiting
            raise
        await turn.release()
    """

    def __init__(self, turns: Turns, session: Session | None) -> None:
        self._turns = turns
        #: None until the ask creates its session (see :meth:`took`)
        self.session = session
        self._lock: asyncio.Lock | None = None
        self._leased = False
        self._renewals: list[Callable[[], None]] = []
        self._renewer: asyncio.Task[None] | None = None

    async def take(self) -> AsyncGenerator[WaitingForTurn, None]:
        """Wait for the turn; yields ``WaitingForTurn`` once if another ask holds it.

        Raises Busy when another process holds a public session for longer than
        :data:`WAIT`.
        """
        assert self.session is not None
        turns, session_id = self._turns, self.session.id
        lock = turns.lock(session_id)
        waiting = lock.locked()
        if waiting:
            yield WaitingForTurn(session_id)
        await lock.acquire()
        self._lock = lock
        if self.session.public or turns.every_session:
            waited = 0.0
            poll = FIRST_POLL
            while not await turns.run(self._take_lease):
                if not waiting:
                    waiting = True
                    yield WaitingForTurn(session_id)
                if waited >= WAIT.total_seconds():
                    raise Busy(
                        f"session {session_id} is busy answering another question; "
                        "try again shortly"
                    )
                await asyncio.sleep(poll)
                waited += poll
                poll = min(poll * 2, MAX_POLL)
            self._leased = True
        self._renewer = asyncio.create_task(self._renew())

    def lease_columns(self, public: bool) -> dict[str, str]:
        """The lease a new session is created with: no one else may hold it yet."""
        if not public:
            return {}
        return {"lease_owner": self._turns.owner, "lease_until": stamp(self._turns.lease)}

    async def took(self, session: Session) -> None:
        """Hold the turn of a session this ask just created with :meth:`lease_columns`.

        No other ask knows the session yet, so nothing is waited for.
        """
        lock = self._turns.lock(session.id)
        await lock.acquire()
        self._lock = lock
        self.session = session
        self._leased = session.public
        self._renewer = asyncio.create_task(self._renew())

    def keep(self, renew: Callable[[], None]) -> None:
        """Also call ``renew`` (on the store thread) at every renewal of this turn."""
        self._renewals.append(renew)

    def _take_lease(self) -> bool:
        turns = self._turns
        assert self.session is not None
        return turns.store.take_lease(self.session.id, turns.owner, stamp(), stamp(turns.lease))

    async def _renew(self) -> None:
        """Renew the session lease and the kept leases every third of a lease."""
        period = self._turns.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            # a locked database this time is no reason to stop: the lease has
            # two more periods before it expires
            with contextlib.suppress(sqlite3.Error, DatabaseError):
                await self._turns.run(self._renew_now)

    def _renew_now(self) -> None:
        if self._leased:
            self._take_lease()
        for renew in self._renewals:
            renew()

    async def release(self) -> None:
        """Give the turn back (on the store thread)."""
        self._stop()
        try:
            if self._leased and self.session is not None:
                self._leased = False
                await self._turns.run(
                    self._turns.store.release_lease, self.session.id, self._turns.owner
                )
        finally:
            # cancelled while the lease goes back: the store thread still gives it
            # back, and this process's next ask must not wait forever
            self._unlock()

    def release_now(self) -> None:
        """Give the turn back synchronously: the task is being cancelled."""
        self._stop()
        if self._leased and self.session is not None:
            self._leased = False
            with contextlib.suppress(Exception):
                self._turns.store.release_lease(self.session.id, self._turns.owner)
        self._unlock()

    def _stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None

    def _unlock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()
