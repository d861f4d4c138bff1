"""PostgreSQL's change feed: notices sent after each commit, LISTENed to by other instances.

Sending (:func:`collect_notices`, :class:`Announcer`): the triggers of
migration ``m008_change_notices`` hand a store's connection the payloads
``<table> <id> <origin>`` of what each statement changed in users, sessions and
messages; once the store's transaction has committed, its announcer sends them
on channel ``mschat_changes`` in a transaction of its own. A NOTIFY inside the
writer's transaction would hold the server-wide notify lock while the commit
waits for the disk, so that writers would commit one at a time.

Listening (:class:`ListenFeed`): a connection of its own LISTENs; the feed waits
on its socket (and on a socket pair that :meth:`ListenFeed.close` writes to),
so a notice is read the moment it arrives and nothing is polled.

A lost connection (the server restarted, the backend was terminated) is
reported as ``[Change()]`` at once (a view refreshing then learns the server is
away) and connected again, with a growing pause between attempts; the feed then
reports ``[Change()]`` again, as notices may have been missed meanwhile. After a quiet
:data:`KEEPALIVE` the connection is checked with one query.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import psycopg

from mschat.core.errors import DatabaseError
from mschat.store.contract import Change, ChangeFeed

CHANNEL = "mschat_changes"
#: seconds without any notice after which the connection is checked (one query)
KEEPALIVE = 10.0
#: the pause before connecting again doubles from the first to the last (seconds)
RETRY_FIRST = 0.05
RETRY_LAST = 2.0
#: what a notice may name
TABLES = frozenset({"users", "sessions", "messages", "settings"})


#: each store connection's payloads raised by the triggers, not sent yet
_pending: weakref.WeakKeyDictionary[psycopg.Connection[Any], list[str]] = (
    weakref.WeakKeyDictionary()
)


def collect_notices(conn: psycopg.Connection[Any]) -> None:
    """Keep the change payloads the triggers raise on ``conn`` until :func:`take_notices`."""
    pending: list[str] = []
    _pending[conn] = pending

    def collect(notice: psycopg.errors.Diagnostic) -> None:
        if notice.message_primary == CHANNEL and notice.message_detail:
            pending.extend(notice.message_detail.split("\n"))

    conn.add_notice_handler(collect)


def take_notices(conn: psycopg.Connection[Any]) -> list[str]:
    """The payloads collected on ``conn`` since the last call (once its commit is over)."""
    pending = _pending.get(conn)
    if not pending:
        return []
    payloads = list(dict.fromkeys(pending))
    pending.clear()
    return payloads


def forget(conn: psycopg.Connection[Any]) -> None:
    """Drop the payloads of a transaction that rolled back."""
    pending = _pending.get(conn)
    if pending:
        pending.clear()


class Announcer:
    """Sends committed changes' payloads, in batches, from a thread and a connection of its own.

    A writer only hands them over (no round trip of its own); whatever piles up
    while a batch is sent goes in the next one. Each batch is one transaction
    (``mschat_announce``) that does not wait for the disk. A batch that cannot be
    sent (the server is gone) is dropped: the listeners lost their connections
    too, and refresh everything when back.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._pending: dict[str, None] = {}  # an ordered set
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mschat-announce", daemon=True)
        self._thread.start()

    def send(self, payloads: list[str]) -> None:
        """Have ``payloads`` sent soon (the transaction that wrote them has committed)."""
        with self._lock:
            if self._closed:
                return
            self._pending.update(dict.fromkeys(payloads))
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is still pending, then close the connection."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                batch, closed = list(self._pending), self._closed
                self._pending.clear()
            if batch:
                self._announce(batch)
            if closed:
                break
        if self._conn is not None:
            self._conn.close()

    def _announce(self, batch: list[str]) -> None:
        for _ in range(2):  # a connection that broke while idle: once more on a new one
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                self._conn.execute("SELECT mschat_announce(%s)", [batch])
                return
            except (psycopg.Error, DatabaseError, OSError):
                if self._conn is not None:
                    self._conn.close()
                self._conn = None


def parse(payload: str, own: str) -> Change | None:
    """The change a notice names; None for this store's own writes.

    A payload this version does not know (another mschat's, or a hand-made
    NOTIFY) is ``Change()``: refresh everything rather than miss a change.
    """
    parts = payload.split(" ")
    if len(parts) != 3 or parts[0] not in TABLES:
        return Change()
    table, key, origin = parts
    if origin and origin == own:
        return None
    if table in ("users", "settings") or key == "*":
        return Change(table)
    try:
        return Change(table, int(key))
    except ValueError:
        return Change(table)


class ListenFeed(ChangeFeed):
    """Notices of ``mschat_changes`` on a connection made by ``connect``."""

    pushed = True

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], origin: str) -> None:
        super().__init__()
        self._connect = connect
        self._origin = origin
        self._conn: psycopg.Connection[Any] | None = None
        self._fd = -1  # its socket, as registered with the selector
        #: held by the thread in :meth:`wait`; whoever holds it owns the connection
        self._using = threading.Lock()
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._selector = selectors.DefaultSelector()  # not select(): any fd number
        self._selector.register(self._wake_in, selectors.EVENT_READ)
        self._retry = RETRY_FIRST
        self._next_attempt = time.monotonic()
        self._quiet_since = time.monotonic()
        # listening before returning: a view loading after this misses nothing; if
        # the server cannot be reached now, wait() connects, then reports [Change()]
        if not self._listen():
            self._back_off()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection, while there is one."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    def _listen(self) -> bool:
        try:
            conn = self._connect()
        except (psycopg.Error, DatabaseError, OSError):
            return False
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            fd = conn.fileno()
            self._selector.register(fd, selectors.EVENT_READ)
        except (psycopg.Error, OSError, ValueError, KeyError):
            conn.close()
            return False
        self._conn, self._fd = conn, fd
        self._quiet_since = time.monotonic()
        return True

    def _drop(self) -> None:
        """Forget a broken connection; the next one is tried after a pause."""
        if self._conn is not None:
            self._selector.unregister(self._fd)
            self._conn.close()
            self._conn, self._fd = None, -1
        self._back_off()

    def _back_off(self) -> None:
        """The next connection attempt after a pause that grows while attempts fail."""
        self._next_attempt = time.monotonic() + self._retry
        self._retry = min(self._retry * 2, RETRY_LAST)

    def wait(self, timeout: float | None = None) -> list[Change]:
        """Block until other instances' notices come; ``[]`` after ``timeout`` or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._using:
            try:
                while not self.closed:
                    changes = self._step(deadline)
                    if changes:
                        return changes
                    if deadline is not None and time.monotonic() >= deadline:
                        return []
                return []
            finally:
                if self.closed:
                    self._release()

    def _step(self, deadline: float | None) -> list[Change]:
        """One wait: for the connection's socket, a wake-up or a pause before reconnecting."""
        now = time.monotonic()
        left = None if deadline is None else max(0.0, deadline - now)
        if self._conn is None:
            if now < self._next_attempt:
                pause = self._next_attempt - now
                self._closed.wait(pause if left is None else min(pause, left))
                return []
            if self._listen():
                return [Change()]  # notices may have been missed while it was gone
            self._back_off()
            return []
        quiet = max(0.0, self._quiet_since + KEEPALIVE - now)
        try:
            events = self._selector.select(quiet if left is None else min(quiet, left))
            if any(key.fileobj is self._wake_in for key, _ in events):
                self._wake_in.recv(64)
                return []
            if events:
                return self._read()
            if time.monotonic() >= self._quiet_since + KEEPALIVE:
                self._conn.execute("SELECT 1")  # still there? (an error drops it)
                return self._read()
        except (psycopg.Error, OSError, ValueError):
            self._drop()
            return [Change()]  # the server went away: views learn it now, not at their next call
        return []

    def _read(self) -> list[Change]:
        """The notices that arrived, other instances' ones as changes."""
        assert self._conn is not None
        self._quiet_since = time.monotonic()
        self._retry = RETRY_FIRST  # the connection works: after a drop, the short pause again
        changes = (parse(n.payload, self._origin) for n in self._conn.notifies(timeout=0))
        return list(dict.fromkeys(c for c in changes if c is not None))

    def close(self) -> None:
        """Stop; the connection is closed by whichever thread holds it."""
        super().close()
        try:
            self._wake_out.send(b"x")
        except OSError:
            pass  # already released
        if self._using.acquire(blocking=False):  # no wait in progress
            try:
                self._release()
            finally:
                self._using.release()

    def _release(self) -> None:
        self._drop()
        self._selector.close()
        self._wake_in.close()
        self._wake_out.close()
