"""The change feed (``Store.changes``): other stores' writes are reported, own ones are not.

PostgreSQL pushes them (LISTEN/NOTIFY, per session); SQLite's ``data_version``
is polled (anything may have changed).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mschat.core.models import User
from mschat.store import Store, open_store
from mschat.store.contract import Change, ChangeFeed
from tests.dbs import sql

#: how long a feed is given to report nothing (a test of an absence must wait)
QUIET = 0.3


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as two instances have."""
    first, second = open_store(db_url), open_store(db_url)
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def feed(stores: tuple[Store, Store]) -> Iterator[ChangeFeed]:
    """The first store's feed."""
    made = stores[0].changes(0.02)
    yield made
    made.close()


def a_user(store: Store) -> User:
    return store.create_user(kind="local", external_id="me", name="me", status="active")


def a_session(store: Store, user: User, title: str = "T") -> int:
    return store.create_session(
        creator_id=user.id, title=title, model=None, system_msg=None, public=0, origin="terminal"
    ).id


def collect(feed: ChangeFeed, until: object, timeout: float = 10.0) -> list[Change]:
    """Changes until ``until(changes)`` holds."""
    got: list[Change] = []
    deadline = time.monotonic() + timeout
    while not until(got):  # type: ignore[operator]
        assert time.monotonic() < deadline, f"only {got}"
        got += feed.wait(deadline - time.monotonic())
    return got


def test_other_stores_writes_are_reported_and_own_ones_are_not(
    stores: tuple[Store, Store], feed: ChangeFeed
):
    mine, theirs = stores
    user = a_user(theirs)
    session_id = a_session(theirs, user)
    collect(feed, lambda got: any(c.concerns_session(session_id) for c in got))
    mine.update_session(session_id, title="renamed here")
    mine.add_message(session_id=session_id, author_id=user.id, role="user", content="mine")
    assert feed.wait(QUIET) == []
    theirs.add_message(session_id=session_id, author_id=user.id, role="user", content="theirs")
    collect(feed, lambda got: any(c.concerns_session(session_id) for c in got))


def test_a_closed_feed_stops_a_wait_on_another_thread_at_once(feed: ChangeFeed):
    returned: list[list[Change]] = []
    waiter = threading.Thread(target=lambda: returned.append(feed.wait()))
    waiter.start()
    feed.close()
    waiter.join(5)
    assert returned == [[]]
    assert feed.wait() == []


def test_postgresql_names_the_session_and_table(pg_url: str):
    mine, theirs = open_store(pg_url), open_store(pg_url)
    feed = mine.changes()
    try:
        assert feed.pushed
        user = a_user(theirs)
        session_id = a_session(theirs, user)
        other_session = a_session(theirs, user, "other")
        reply = theirs.add_reply(session_id, "m", "2999-01-01T00:00:00+00:00")
        collect(feed, lambda got: Change("messages", session_id) in got)
        theirs.update_message(reply.id, content="streamed")
        assert collect(feed, bool) == [Change("messages", session_id)]  # a flush: nothing else
        with theirs.write():
            theirs.update_session(other_session, title="one")
            theirs.update_session(other_session, title="two")
        assert collect(feed, bool) == [Change("sessions", other_session)]  # once, at commit
        sql(
            theirs,
            "INSERT INTO sessions (creator_id, title, public, origin, created, updated, modified)"
            " SELECT ?, 'bulk', false, 'terminal', now(), now(), now()"
            " FROM generate_series(1, 101)",
            [user.id],
        )
        assert collect(feed, bool) == [Change("sessions")]  # too many to name one by one
    finally:
        feed.close()
        mine.close()
        theirs.close()


def test_a_dropped_listen_connection_says_anything_may_have_changed_and_comes_back(
    pg_url: str,
):
    mine, theirs = open_store(pg_url), open_store(pg_url)
    feed = mine.changes()
    try:
        user = a_user(theirs)
        collect(feed, bool)
        pid = feed.backend_pid  # type: ignore[attr-defined]
        sql(theirs, "SELECT pg_terminate_backend(?)", [pid])
        # gone: a view refreshes at once (and so learns whether the server is away)
        assert collect(feed, bool) == [Change()]
        assert feed.backend_pid is None  # type: ignore[attr-defined]
        # back: notices may have been missed meanwhile
        assert collect(feed, bool) == [Change()]
        assert feed.backend_pid not in (None, pid)  # type: ignore[attr-defined]
        session_id = a_session(theirs, user)
        collect(feed, lambda got: Change("sessions", session_id) in got)
    finally:
        feed.close()
        mine.close()
        theirs.close()


def test_notices_are_read_as_data():
    from mschat.store.postgres.changes import parse

    assert parse("messages 12 abc", "mine") == Change("messages", 12)
    assert parse("sessions * abc", "mine") == Change("sessions")
    assert parse("users 3 abc", "mine") == Change("users")
    assert parse("messages 12 mine", "mine") is None  # own write
    assert parse("messages 12 ", "mine") == Change("messages", 12)  # a writer without origin
    for hostile in ("", "drop table", "messages x abc", "messages 1 2 3", "\x1b[2J 1 a"):
        change = parse(hostile, "mine")
        assert change is not None and change.concerns_session(1)


def raw_listener(url: str) -> Any:
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    conn.execute("LISTEN mschat_changes")
    return conn


def notices(conn: Any, until: Any, timeout: float = 10.0) -> list[Any]:
    """Notices on a raw LISTEN connection until ``until(got)`` holds."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while not until(got):
        assert time.monotonic() < deadline, f"only {got}"
        got += list(conn.notifies(timeout=deadline - time.monotonic(), stop_after=1))
    return got


def test_a_stores_notices_are_sent_after_its_commit_by_its_announcer(pg_url: str):
    store = open_store(pg_url)
    listener = raw_listener(pg_url)
    try:
        user = a_user(store)
        session_id = a_session(store, user)
        made = f"sessions {session_id} "
        notices(listener, lambda got: any(made in n.payload for n in got))
        with store.write():
            store.update_session(session_id, title="inside")
            assert list(listener.notifies(timeout=QUIET)) == []  # not before the commit
        got = notices(
            listener, lambda got: any(f"sessions {session_id} " in n.payload for n in got)
        )
        # sent by a connection of their own: the writer's transaction took no NOTIFY lock
        (announcer,) = sql(
            store,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'mschat-announce' "
            "AND datname = current_database()",
        )
        assert {n.pid for n in got} == {announcer[0]}
        with pytest.raises(RuntimeError), store.write():
            store.update_session(session_id, title="rolled back")
            raise RuntimeError
        assert list(listener.notifies(timeout=QUIET)) == []
        store.update_session(session_id, title="last")
    finally:
        store.close()  # sends what is still pending first
    try:
        notices(listener, lambda got: any(made in n.payload for n in got))
    finally:
        listener.close()


def test_another_programs_writes_notify_too(pg_url: str):
    import psycopg

    store = open_store(pg_url)
    feed = store.changes()
    try:
        user = a_user(store)
        session_id = a_session(store, user)
        with psycopg.connect(pg_url, autocommit=True) as psql:  # no mschat origin
            psql.execute("UPDATE sessions SET title = 'by hand' WHERE id = %s", [session_id])
        collect(feed, lambda got: Change("sessions", session_id) in got)
    finally:
        feed.close()
        store.close()


def test_a_listen_connection_that_cannot_be_made_is_tried_again_with_growing_pauses(
    pg_url: str,
):
    import psycopg

    from mschat.store.postgres.changes import RETRY_FIRST, ListenFeed

    attempts: list[float] = []

    def connect() -> Any:
        attempts.append(time.monotonic())
        if len(attempts) <= 4:  # the server is restarting
            raise psycopg.OperationalError("connection refused")
        return psycopg.connect(pg_url, autocommit=True)

    feed = ListenFeed(connect, "mine")  # not listening yet: no error either
    try:
        assert collect(feed, bool) == [Change()]  # back: anything may have changed meanwhile
        pauses = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        assert len(pauses) == 4 and pauses[0] >= RETRY_FIRST * 0.9
        assert all(b > a for a, b in itertools.pairwise(pauses))
    finally:
        feed.close()
