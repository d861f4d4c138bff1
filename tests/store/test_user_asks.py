"""A user's questions as the rate limit and one-question-at-a-time see them, and the
user's lock that makes checking and storing a question one step across instances."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mschat.store import Store, open_store
from tests.dbs import sql

LONG_AGO = "2000-01-01T00:00:00.000000+00:00"


def stamp(seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as two instances have."""
    first, second = open_store(db_url), open_store(db_url)
    yield first, second
    first.close()
    second.close()


def users_and_session(store: Store) -> tuple[int, int, int]:
    mine = store.create_user(kind="api", external_id="me", name="me", status="active").id
    other = store.create_user(kind="api", external_id="other", name="other", status="active").id
    session = store.create_session(creator_id=mine, title="t", origin="api", public=1).id
    return mine, other, session


def ask(store: Store, session: int, author: int, text: str = "q", **values: str) -> int:
    return store.add_message(
        session_id=session, author_id=author, role="user", content=text, **values
    ).id


def test_questions_since_and_the_oldest(stores: tuple[Store, Store]):
    store = stores[0]
    mine, other, session = users_and_session(store)
    ask(store, session, mine, created="2001-01-01T00:00:00.000000+00:00")
    ask(store, session, other)
    ask(store, session, mine, created="2030-01-01T00:00:00.000000+00:00")
    ask(store, session, mine, created="2030-06-01T00:00:00.000000+00:00")
    found = store.user_asks(mine, since="2020-01-01T00:00:00+00:00", live_after=None)
    assert (found.questions, found.answering) == (2, False)
    assert found.oldest is not None and found.oldest.startswith("2030-01-01T00:00:00")
    assert store.user_asks(mine, since=None, live_after=None) == (0, None, False)


def test_answering_is_a_live_reply_right_after_a_question_of_the_user(
    stores: tuple[Store, Store],
):
    store = stores[0]
    mine, other, session = users_and_session(store)

    def answering() -> bool:
        return store.user_asks(mine, since=None, live_after=stamp()).answering

    ask(store, session, mine)
    reply = store.add_reply(session, "m", stamp(30))
    assert answering()
    # the same count: a live-only look costs no count of questions
    assert store.user_asks(mine, since=None, live_after=stamp()).questions == 0
    store.renew_reply_lease(reply.id, stamp(-1))  # its writer died
    assert not answering()
    store.renew_reply_lease(reply.id, stamp(30))
    store.update_message(reply.id, status="complete", lease_until=None)
    assert not answering()
    ask(store, session, other)
    store.add_reply(session, "m", stamp(30))  # another user's question is answered
    assert not answering()
    assert stores[1].user_asks(other, since=None, live_after=stamp()).answering


def test_the_users_lock_makes_check_and_store_one_step(stores: tuple[Store, Store]):
    first, second = stores
    mine, _, session = users_and_session(first)
    stored = threading.Event()
    release = threading.Event()
    counted: list[int] = []

    def hold() -> None:
        with first.write():
            first.lock_user(mine)
            ask(first, session, mine)
            stored.set()
            release.wait(10)

    def check() -> None:
        with second.write():
            second.lock_user(mine)
            counted.append(second.user_asks(mine, since=LONG_AGO, live_after=None).questions)

    holder = threading.Thread(target=hold)
    holder.start()
    assert stored.wait(10)
    checker = threading.Thread(target=check)
    checker.start()
    if first.backend == "postgresql":
        # the checker waits for the holder's row lock
        waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while sql(first, waiting) == [(0,)]:
            assert datetime.now(UTC) < deadline, "the second lock_user did not wait"
            time.sleep(0.01)
    release.set()
    holder.join(10)
    checker.join(10)
    # the check came after the holder's question was stored, never beside it
    assert counted == [1]


def test_the_lock_leaves_others_free(pg_url: str):
    """PostgreSQL: only the user's own questions wait (SQLite has one writer anyway)."""
    first, second = open_store(pg_url), open_store(pg_url)
    mine, other, session = users_and_session(first)
    with first.write():
        first.lock_user(mine)
        # another user's lock and question, and a row referring to the locked user, go on
        with second.write():
            second.lock_user(other)
            ask(second, session, other)
            second.create_session(creator_id=mine, title="refers to me", origin="api")
    first.close()
    second.close()
