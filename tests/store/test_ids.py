"""Ids are never reused, and a database of the previous schema upgrades keeping everything."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from mschat.store import Store, open_store
from mschat.store.sqlite import SQLiteStore
from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS, migrations
from tests.conftest import fake_model_config
from tests.dbs import sql
from tests.fakes.fake_openai import FakeOpenAIThread

#: every table and what orders its rows, for before/after comparisons
TABLES = {
    "users": "id",
    "sessions": "id",
    "messages": "id",
    "api_calls": "id",
    "feedback": "id",
    "interactions": "id",
    "idempotency_keys": "id",
}


def _new_session(store: Store, user_id: int, title: str) -> int:
    return store.create_session(creator_id=user_id, title=title, origin="terminal").id


def test_deleted_ids_are_not_handed_out_again(db_url: str):
    store = open_store(db_url)
    me = store.create_user(kind="local", external_id="me", name="me", status="active")
    other = store.create_user(kind="api", external_id="bob", name="bob", status="active")
    first = _new_session(store, me.id, "first")
    newest = _new_session(store, me.id, "newest")
    kept = store.add_message(session_id=first, author_id=me.id, role="user", content="a")
    last = store.add_message(session_id=first, author_id=me.id, role="user", content="b")

    store.delete_messages_from(first, last.id)
    assert store.add_message(session_id=first, role="user", content="c").id > last.id > kept.id
    store.delete_session(newest)
    assert _new_session(store, me.id, "again") > newest
    # users are never removed by mschat, but a tool may do it
    sql(store, "DELETE FROM users WHERE id = ?", [other.id])
    again = store.create_user(kind="api", external_id="carol", name="carol", status="active")
    assert again.id > other.id
    store.close()


@pytest.mark.timeout(60)
def test_rm_then_ask_new_gets_a_new_session_id(
    mschat_home: Path, fake_thread: FakeOpenAIThread, db_url: str
):
    fake_model_config(mschat_home, fake_thread.base_url)
    env = {**os.environ, "MSCHAT_HOME": str(mschat_home), "MSCHAT_DB": db_url}

    def mschat(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mschat", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def session_ids() -> list[int]:
        store = open_store(db_url)
        ids = [row[0] for row in sql(store, "SELECT id FROM sessions ORDER BY id")]
        store.close()
        return ids

    mschat("ask", "--new", "the old conversation")
    (old,) = session_ids()
    mschat("sessions", "rm", str(old), "-y")
    mschat("ask", "--new", "a new conversation")
    (new,) = session_ids()
    assert new != old


# ---- the upgrade from schema 5 (SQLite's; PostgreSQL starts at 6) ---------------


def _schema_5(path: Path) -> sqlite3.Connection:
    """A database as the previous mschat made it: migrations up to m005."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    migrations.apply(Database(conn), stop_before="m006_ids_never_reused")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    return conn


def _fill(conn: sqlite3.Connection) -> None:
    """Rows in every table, with gaps left by deletions and every reference kind."""
    now = "2025-01-01T00:00:00+00:00"
    later = "2025-01-02T00:00:00+00:00"
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executemany(
        "INSERT INTO users (id, kind, external_id, name, created, updated, modified, status,"
        " current_session_id, admin) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', NULL, ?)",
        [(1, "local", "me", "me", now, now, now, 1), (3, "discord", "42", "ann", now, now, now, 0)],
    )
    conn.executemany(
        "INSERT INTO sessions (id, creator_id, title, public, origin, created, updated, modified,"
        " forked_from_id, hidden, lease_owner, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?, ?)",
        [
            (2, 1, "about wal", 0, "terminal", now, later, now, None, 0, "pid-1", later),
            (5, 3, "public one", 1, "discord_guild", now, later, now, None, 0, None, None),
            (7, 1, "a fork", 0, "terminal", now, later, now, 2, 1, None, None),
        ],
    )
    conn.execute("UPDATE users SET current_session_id = 2 WHERE id = 1")
    conn.executemany(
        "INSERT INTO messages (id, session_id, author_id, role, content, created, status,"
        " external_ref, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (10, 2, 1, "user", "what is the write-ahead log", now, "complete", None, None),
            (11, 2, None, "assistant", "a journal of changes", now, "complete", None, None),
            (14, 5, 3, "user", "hello from discord", now, "complete", "998877", None),
            (15, 5, None, "assistant", "half a reply", later, "streaming", "998878", later),
            (20, 7, 1, "user", "what is the write-ahead log", now, "complete", None, None),
            (21, 2, 1, "user", "to be removed", now, "complete", None, None),
        ],
    )
    conn.execute("DELETE FROM messages WHERE id = 21")  # the highest id is gone
    conn.execute(
        "INSERT INTO api_calls (message_id, session_id, user_id, provider, model, started,"
        " status) VALUES (11, 2, 1, 'fake', 'fake-model', ?, 'ok')",
        [now],
    )
    conn.execute(
        "INSERT INTO feedback (message_id, user_id, kind, created) VALUES (11, 3, 'good', ?)",
        [now],
    )
    conn.execute(
        "INSERT INTO interactions (user_id, source, kind, payload, created)"
        " VALUES (3, 'discord', 'message', '{}', ?)",
        [now],
    )
    conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, endpoint, request_hash, state,"
        " session_id, message_id, created) VALUES (1, 'k', 'POST /chat', 'h', 'done', 2, 11, ?)",
        [now],
    )
    conn.commit()


def _columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    return {
        table: [row[1] for row in conn.execute(f"PRAGMA table_info('{table}')")] for table in TABLES
    }


def _dump(
    conn: sqlite3.Connection, columns: dict[str, list[str]]
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables, in the given columns (later migrations add some)."""
    return {
        table: conn.execute(
            f"SELECT {', '.join(columns[table])} FROM {table} ORDER BY {order}"
        ).fetchall()
        for table, order in TABLES.items()
    }


def _structure(conn: sqlite3.Connection) -> dict[str, Any]:
    """Columns, foreign keys, indexes (with their definitions), triggers and views."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {
        "columns": {t: conn.execute(f"PRAGMA table_xinfo('{t}')").fetchall() for t in tables},
        "foreign keys": {
            t: conn.execute(f"PRAGMA foreign_key_list('{t}')").fetchall() for t in tables
        },
        "objects": sorted(
            conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE type IN ('index', 'trigger', 'view')"
            ).fetchall(),
            key=lambda row: (row[0], row[1]),
        ),
    }


@pytest.mark.sqlite_only
def test_a_schema_5_database_upgrades_keeping_every_row(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = _schema_5(path)
    _fill(conn)
    columns = _columns(conn)
    before = _dump(conn, columns)
    conn.close()

    store = SQLiteStore.open(path)
    conn = store.conn
    assert store.applied_migrations() == KNOWN_MIGRATIONS  # m006 and any later ones
    assert _dump(conn, columns) == before
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert dict(conn.execute("SELECT name, seq FROM sqlite_sequence")) == {
        "users": 3,
        "sessions": 7,
        "messages": 20,
    }
    # the same schema as a database made new by this mschat (indexes, triggers, view)
    fresh = SQLiteStore.open(tmp_path / "fresh.db")
    assert _structure(conn) == _structure(fresh.conn)
    fresh.close()

    # the FTS index still finds the old messages (and their new neighbours)
    assert [h.message_id for h in store.search("write-ahead", user_id=None)] == [20, 10]
    counts = dict(conn.execute("SELECT id, message_count FROM sessions"))
    assert counts == {2: 2, 5: 2, 7: 1}
    message = store.add_message(session_id=2, author_id=1, role="user", content="more wal")
    # 21, deleted before the upgrade, was above the highest id kept: no trace of it is left
    assert message.id == 21
    assert [h.message_id for h in store.search("wal", user_id=None)] == [21]
    # message counts follow inserts and deletes (triggers), foreign keys still cascade
    assert dict(conn.execute("SELECT id, message_count FROM sessions"))[2] == 3
    store.delete_messages_from(2, message.id)
    assert dict(conn.execute("SELECT id, message_count FROM sessions"))[2] == 2
    assert store.add_message(session_id=2, role="user", content="x").id == 22
    store.delete_session(5)
    assert store.get_message(11).content == "a journal of changes"
    assert conn.execute("SELECT count(*) FROM messages WHERE session_id = 5").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (1,)
    assert conn.execute("SELECT dialogue FROM session_dialogues WHERE session_id = 2").fetchone()
    assert store.create_session(creator_id=1, title="new", origin="terminal").id == 8
    store.close()


@pytest.mark.sqlite_only
def test_rows_that_already_referred_to_missing_rows_do_not_block_the_upgrade(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = _schema_5(path)
    _fill(conn)
    conn.execute("PRAGMA foreign_keys = OFF")  # as a tool writing the file directly may have
    conn.execute("UPDATE messages SET author_id = 99 WHERE id = 10")
    conn.commit()
    conn.close()
    store = SQLiteStore.open(path)
    assert store.applied_migrations() == KNOWN_MIGRATIONS  # m006 and any later ones
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == [
        ("messages", 10, "users", 0)
    ]
    store.close()


def _open_and_count(path: str) -> None:
    store = SQLiteStore.open(path)
    assert store.table_counts()["messages"] == 5
    store.close()


@pytest.mark.sqlite_only
@pytest.mark.timeout(120)
def test_two_processes_opening_an_old_database_upgrade_it_once(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = _schema_5(path)
    _fill(conn)
    conn.close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_and_count, args=(str(path),)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(90)
        assert worker.exitcode == 0
    store = SQLiteStore.open(path)
    assert store.applied_migrations().count("m006_ids_never_reused") == 1
    store.close()
