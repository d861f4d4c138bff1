"""Taking turns in a session across processes (the bot, the API, the TUI, the CLI).

Inside one process an ``asyncio.Lock`` per session orders the asks; across
processes a lease row in the database does: the holder renews it while its reply
streams, and a process that dies simply lets it expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from mschat.core.errors import Busy
from mschat.store.store import Store

T = TypeVar("T")

#: how long a lease lasts without renewal (a dead holder blocks the session this long)
LEASE = timedelta(seconds=30)
#: how long an ask waits for another process's turn before giving up
WAIT = timedelta(minutes=5)
FIRST_POLL = 0.02
MAX_POLL = 0.5

Runner = Callable[..., Awaitable[Any]]


def new_owner() -> str:
    """A name for this process's leases, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _stamp(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat(timespec="microseconds")


@contextlib.asynccontextmanager
async def session_turn(
    store: Store, run: Runner, session_id: int, owner: str
) -> AsyncIterator[None]:
    """Hold ``session_id``'s lease for the block, waiting for another holder to finish."""
    waited = 0.0
    poll = FIRST_POLL
    while not await run(store.take_lease, session_id, owner, _stamp(), _stamp(LEASE)):
        if waited >= WAIT.total_seconds():
            raise Busy(
                f"session {session_id} is busy answering another question; try again shortly"
            )
        await asyncio.sleep(poll)
        waited += poll
        poll = min(poll * 2, MAX_POLL)
    renewer = asyncio.create_task(_renew(store, run, session_id, owner))
    try:
        yield
    except BaseException:
        renewer.cancel()
        # the task may be cancelled: give the lease back synchronously
        with contextlib.suppress(Exception):
            store.release_lease(session_id, owner)
        raise
    renewer.cancel()
    await run(store.release_lease, session_id, owner)


async def _renew(store: Store, run: Runner, session_id: int, owner: str) -> None:
    """Keep the lease alive while a long reply streams."""
    while True:
        await asyncio.sleep(LEASE.total_seconds() / 3)
        await run(store.take_lease, session_id, owner, _stamp(), _stamp(LEASE))
