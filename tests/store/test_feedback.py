"""Feedback on replies: one vote per user and kind (enforced by the database, for
every instance), every "other" text kept, counts and the admin's listing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mschat.store import Store, open_store
from mschat.store.postgres import migrations as postgres_migrations
from mschat.store.sqlite import migrations as sqlite_migrations
from tests.dbs import sql


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as two bot processes have."""
    first, second = open_store(db_url), open_store(db_url)
    yield first, second
    first.close()
    second.close()


def answer(store: Store, text: str = "the answer") -> tuple[int, int, int]:
    """Two users and a reply in a public session: (alice, bob, reply id)."""
    alice = store.create_user(kind="discord", external_id="1", name="alice", status="new").id
    bob = store.create_user(kind="discord", external_id="2", name="bob", status="new").id
    session = store.create_session(creator_id=alice, title="about ducks", origin="discord")
    store.add_message(session_id=session.id, role="user", content="q", author_id=alice)
    reply = store.add_message(session_id=session.id, role="assistant", content=text)
    return alice, bob, reply.id


def test_a_vote_counts_once_per_user_and_kind_across_instances(stores: tuple[Store, Store]):
    first, second = stores
    alice, bob, reply = answer(first)
    assert first.add_feedback(message_id=reply, user_id=alice, kind="good") is not None
    # the same vote again, from another instance: refused by the database
    assert second.add_feedback(message_id=reply, user_id=alice, kind="good") is None
    assert first.add_feedback(message_id=reply, user_id=alice, kind="good") is None
    # another kind by the same user counts (each kind once per member)
    assert second.add_feedback(message_id=reply, user_id=alice, kind="outdated") is not None
    assert second.add_feedback(message_id=reply, user_id=bob, kind="good") is not None
    # every "other" text counts, even two from one user
    for text in ("too long", "wrong year"):
        assert first.add_feedback(message_id=reply, user_id=bob, kind="other", text=text)
    assert first.feedback_counts(reply) == second.feedback_counts(reply)
    assert second.feedback_counts(reply) == {"good": 2, "outdated": 1, "other": 2}
    assert first.feedback_counts(reply + 1000) == {}


def test_feedback_listed_per_answer_newest_first(stores: tuple[Store, Store]):
    store, _ = stores
    alice, bob, older = answer(store, "x" * 1000)
    session = store.get_message(older).session_id
    newer = store.add_message(session_id=session, role="assistant", content="second").id
    store.add_feedback(message_id=older, user_id=alice, kind="inaccurate")
    store.add_feedback(message_id=newer, user_id=bob, kind="other", text="cite a source")
    store.add_feedback(message_id=older, user_id=bob, kind="other", text="the year is wrong")
    rows = store.list_feedback()
    # the answer most recently given feedback first; its rows oldest first
    assert [(r["message_id"], r["user_name"], r["kind"], r["text"]) for r in rows] == [
        (older, "alice", "inaccurate", None),
        (older, "bob", "other", "the year is wrong"),
        (newer, "bob", "other", "cite a source"),
    ]
    assert rows[0]["answer"] == "x" * 300 and rows[0]["session_title"] == "about ducks"
    assert rows[0]["session_id"] == session and isinstance(rows[0]["created"], str)
    assert [r["message_id"] for r in store.list_feedback(limit=1)] == [older, older]


def test_the_migration_keeps_the_first_of_repeated_votes(stores: tuple[Store, Store]):
    store, _ = stores
    alice, bob, reply = answer(store)
    # a database from before the rule: repeated votes were stored
    sql(store, "DROP INDEX idx_feedback_once")
    rows = [(alice, "good", None), (alice, "good", None), (bob, "good", None)]
    rows += [(alice, "other", "a"), (alice, "other", "a")]
    for user, kind, text in rows:
        store.add_feedback(message_id=reply, user_id=user, kind=kind, text=text)
    first = min(r[0] for r in sql(store, "SELECT id FROM feedback WHERE kind = 'good'"))
    if store.backend == "postgresql":
        with store.write() as conn:
            sql(store, "DROP INDEX idx_api_calls_started")
            postgres_migrations.m010_feedback_logs(conn)
    else:
        with store.write() as conn:
            for statement in sqlite_migrations.FEEDBACK_ONCE:
                conn.execute(statement)  # type: ignore[attr-defined]
    assert store.feedback_counts(reply) == {"good": 2, "other": 2}
    assert first in [r[0] for r in sql(store, "SELECT id FROM feedback WHERE user_id = ?", [alice])]
    assert store.add_feedback(message_id=reply, user_id=alice, kind="good") is None
