"""SQLite's change feed: ``PRAGMA data_version``, read every ``interval`` seconds.

SQLite cannot push a change to another process, so this feed polls; the pragma
is a cheap read that moves only when another connection commits, so the
store's own writes are never reported. It cannot say what changed: each move is
one ``Change()`` (refresh everything).
"""

from __future__ import annotations

import sqlite3
import time

from mschat.core.errors import DatabaseError
from mschat.store.contract import Change, ChangeFeed, Store


class DataVersionFeed(ChangeFeed):
    """Polls a store's :meth:`~Store.data_version`; reports ``[Change()]`` when it moved."""

    def __init__(self, store: Store, interval: float) -> None:
        super().__init__()
        self._store = store
        self._interval = interval
        self._version = self._read()  # what moves after this is reported

    def _read(self) -> int | None:
        try:
            return self._store.data_version()
        except (sqlite3.Error, DatabaseError):
            return None  # locked or closed now: the next poll tries again

    def wait(self, timeout: float | None = None) -> list[Change]:
        """Poll until the database moved (``[Change()]``), ``timeout`` passed or closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pause = self._interval
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            if self._closed.wait(pause):
                return []
            version = self._read()
            if version is not None and version != self._version:
                self._version = version  # (after a failed first read: unknown, so reported)
                return [Change()]
            if deadline is not None and time.monotonic() >= deadline:
                return []
