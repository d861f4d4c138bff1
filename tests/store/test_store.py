"""The store: schema from a blank database, many processes at once, stale replies."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mschat.core.models import utcnow
from mschat.store import open_store
from mschat.store.sqlite import SQLiteStore as Store
from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS
from tests.dbs import sql

EXPECTED_TABLES = {
    "users",
    "sessions",
    "messages",
    "api_calls",
    "feedback",
    "interactions",
    "messages_fts",
    "_sqlite_migrations",
}


@pytest.mark.sqlite_only
def test_blank_database_gets_the_whole_schema(tmp_path: Path):
    store = Store.open(tmp_path / "new.db")
    tables = set(store.db.table_names())
    assert tables >= EXPECTED_TABLES
    assert "session_dialogues" in store.db.view_names()
    assert store.applied_migrations() == KNOWN_MIGRATIONS
    conn = store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    columns = {
        table: {c.name for c in store.db[table].columns}
        for table in ("users", "sessions", "messages", "api_calls")
    }
    assert {
        "kind",
        "external_id",
        "status",
        "model",
        "current_session_id",
        "system_msg",
        "show_public",
        "attach",
        "max_tokens",
        "temperature",
        "created",
        "updated",
        "modified",
    } <= columns["users"]
    assert {"creator_id", "title", "model", "public", "system_msg", "origin"} <= columns["sessions"]
    assert {
        "session_id",
        "author_id",
        "role",
        "content",
        "status",
        "tokens_in",
        "tokens_out",
        "latency_ms",
        "finish_reason",
        "error",
    } <= columns["messages"]
    # every foreign key has an index
    for table in ("sessions", "messages", "api_calls", "feedback", "interactions", "users"):
        indexed = {i.columns[0] for i in store.db[table].indexes}
        for fk in store.db[table].foreign_keys:
            assert fk.column in indexed, f"{table}.{fk.column} has no index"
    assert any(i.columns[:2] == ["session_id", "created"] for i in store.db["messages"].indexes)
    store.close()


def test_search_follows_inserts_updates_and_deletes(db_url: str):
    store = open_store(db_url)
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    session = store.create_session(
        creator_id=user.id, title="t", model=None, system_msg=None, public=0, origin="terminal"
    )
    message = store.add_message(
        session_id=session.id, author_id=user.id, role="user", content="alpha"
    )
    assert [h.message_id for h in store.search("alpha", user_id=user.id)] == [message.id]
    store.update_message(message.id, content="beta")
    assert store.search("alpha", user_id=user.id) == []
    assert len(store.search("beta", user_id=user.id)) == 1
    store.delete_session(session.id)
    assert store.search("beta", user_id=user.id) == []
    assert store.table_counts()["messages"] == 0  # cascade


def test_reopening_is_idempotent(db_url: str):
    open_store(db_url).close()
    store = open_store(db_url)
    assert store.applied_migrations() == KNOWN_MIGRATIONS
    store.close()


def _writer(path: str, worker: int, count: int) -> None:
    store = open_store(path)
    user = store.create_user(
        kind="api", external_id=f"w{worker}", name=f"w{worker}", status="active"
    )
    session = store.create_session(
        creator_id=user.id,
        title=f"s{worker}",
        model=None,
        system_msg=None,
        public=0,
        origin="api",
    )
    for index in range(count):
        message = store.add_message(
            session_id=session.id, author_id=user.id, role="user", content=f"m{index}"
        )
        store.update_message(message.id, status="complete")
    store.close()


@pytest.mark.timeout(120)
def test_two_processes_write_one_database_without_locking_errors(db_url: str):
    path = db_url
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, n, 200)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(90)
        assert worker.exitcode == 0
    store = open_store(path)
    counts = sql(store, "SELECT count(*), count(DISTINCT session_id) FROM messages")
    store.close()
    assert counts == [(400, 2)]


def test_schema_version_matches_the_migrations():
    from mschat.store.postgres.migrations import KNOWN_MIGRATIONS as POSTGRES_MIGRATIONS
    from mschat.store.sqlite import SCHEMA_VERSION

    assert len(KNOWN_MIGRATIONS) == SCHEMA_VERSION
    assert POSTGRES_MIGRATIONS == KNOWN_MIGRATIONS  # one schema version on both backends


def test_replies_left_streaming_by_a_dead_process_are_recovered(tmp_path: Path, db_url: str):
    from mschat.config import load_config
    from mschat.core.services import build_services

    path = db_url
    store = open_store(path)
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    session = store.create_session(
        creator_id=user.id, title="t", model=None, system_msg=None, public=0, origin="terminal"
    )
    old = store.add_message(
        session_id=session.id,
        role="assistant",
        content="half",
        status="streaming",
        created="2020-01-01T00:00:00+00:00",
    )
    fresh = store.add_message(
        session_id=session.id, role="assistant", content="now", status="streaming"
    )
    store.close()
    services = build_services(load_config({"MSCHAT_HOME": str(tmp_path)}), db=path)
    try:
        assert services.store.get_message(old.id).status == "interrupted"
        assert "stopped" in services.store.get_message(old.id).error
        assert services.store.get_message(fresh.id).status == "streaming"
    finally:
        services.store.close()


def test_rows_of_every_table_are_read_in_id_order_the_same_way(db_url: str):
    store = open_store(db_url)
    user = store.create_user(kind="local", external_id="me", name="me", status="active", admin=1)
    session = store.create_session(creator_id=user.id, title="t", origin="terminal", public=1)
    for index in range(5):
        store.add_message(
            session_id=session.id, author_id=user.id, role="user", content=f"m{index}"
        )
    first = store.read_rows("messages", limit=2)
    rest = store.read_rows("messages", after_id=first[-1]["id"])
    assert [row["content"] for row in first + rest] == [f"m{i}" for i in range(5)]
    (row,) = store.read_rows("sessions")
    assert (row["public"], row["hidden"], row["title"]) == (1, 0, "t")
    assert row["created"] == session.created  # ISO text on every backend
    assert store.read_rows("users")[0]["admin"] == 1
    with pytest.raises(ValueError):
        store.read_rows("sqlite_master")
    store.close()


def utcnow_minus_hour() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="microseconds")


def test_one_claim_of_a_notice_among_many_connections(db_url: str):
    stores = [open_store(db_url) for _ in range(6)]
    try:
        user = stores[0].create_user(kind="discord", external_id="7", name="m", status="disabled")
        start = threading.Barrier(len(stores), timeout=10)

        def claim(index: int) -> bool:
            start.wait()
            return stores[index].claim_notice(
                user.id, "discord", "disabled_hint", utcnow_minus_hour(), utcnow()
            )

        with ThreadPoolExecutor(len(stores)) as pool:
            claimed = list(pool.map(claim, range(len(stores))))
        assert claimed.count(True) == 1
        # within the interval nobody claims it again; after it, one does
        hour_ago = utcnow_minus_hour()
        assert not stores[1].claim_notice(user.id, "discord", "disabled_hint", hour_ago, utcnow())
        assert stores[2].claim_notice(user.id, "discord", "disabled_hint", utcnow(), utcnow())
    finally:
        for store in stores:
            store.close()


def test_a_reply_is_finished_all_at_once_or_not_at_all(db_url: str):
    store = open_store(db_url)
    try:
        user = store.create_user(kind="local", external_id="me", name="me", status="active")
        session = store.create_session(creator_id=user.id, title="t", origin="terminal", public=1)
        store.add_message(session_id=session.id, author_id=user.id, role="user", content="q")
        reply = store.add_reply(session.id, "p/m", "2999-01-01T00:00:00+00:00")
        before = store.get_session(session.id).updated
        call = {"message_id": reply.id, "session_id": session.id, "user_id": user.id}
        call |= {"provider": "p", "model": "m", "status": "completed"}
        with pytest.raises(Exception):  # noqa: B017 (each backend has its own error)
            store.finish_reply(reply.id, session.id, {"content": "lost"}, {**call, "nope": 1})
        assert store.get_message(reply.id).content == ""
        assert store.api_calls_for(reply.id) == []

        done = {"content": "answer", "status": "completed", "latency_ms": 12}
        store.finish_reply(reply.id, session.id, done, call)
        finished = store.get_message(reply.id)
        assert (finished.content, finished.status, finished.latency_ms) == (
            "answer",
            "completed",
            12,
        )
        (row,) = store.read_rows("messages", after_id=reply.id - 1)
        assert row["lease_until"] is None
        assert [c["status"] for c in store.api_calls_for(reply.id)] == ["completed"]
        assert store.get_session(session.id).updated > before
    finally:
        store.close()


def test_a_question_and_its_reply_are_stored_together_in_order(db_url: str):
    store = open_store(db_url)
    try:
        user = store.create_user(kind="local", external_id="me", name="me", status="active")
        session = store.create_session(creator_id=user.id, title="t", origin="terminal", public=1)
        before = store.get_session(session.id).updated
        asked, reply = store.add_question(
            session.id, user.id, "q?", model="p/m", lease_until="2999-01-01T00:00:00+00:00"
        )
        assert asked.id < reply.id
        stored = store.messages(session.id)
        assert [(m.id, m.role, m.content, m.status) for m in stored] == [
            (asked.id, "user", "q?", "complete"),
            (reply.id, "assistant", "", "streaming"),
        ]
        assert (stored[1].model, stored[0].author_id) == ("p/m", user.id)
        assert store.get_session(session.id).updated > before
        with pytest.raises(Exception):  # noqa: B017 (no such session: each backend's error)
            store.add_question(10_000, user.id, "lost", model="p/m", lease_until="2999")
        assert len(store.read_rows("messages")) == 2
    finally:
        store.close()
