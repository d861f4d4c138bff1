"""Databases for the tests of ``mschat db``: a history in every table, older and newer schemas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mschat.store import Store
from mschat.store.location import parse
from mschat.store.sqlite.store import APPLICATION_ID

FUTURE_MIGRATION = "m999_from_the_future"


@dataclass
class History:
    """The ids a filled history holds."""

    alice: int
    bob: int
    sessions: list[int]
    deleted_session: int
    last_message: int


def fill_history(store: Store, *, questions: int = 3) -> History:
    """Rows in every table, with what a copy must keep: gaps, flags, NULLs, references."""
    alice = store.create_user(
        kind="local", external_id="alice", name="Alice ✓", status="active", admin=1
    )
    bob = store.create_user(
        kind="discord", external_id="42", name="Bob", status="new", show_public=1, rate_limit=5
    )
    first = store.create_session(
        creator_id=alice.id, title="first «é»", origin="terminal", public=1, model="fake/m"
    )
    gone = store.create_session(creator_id=bob.id, title="gone", origin="api")
    fork = store.create_session(
        creator_id=bob.id, title="fork", origin="discord_dm", forked_from_id=first.id, hidden=1
    )
    reply = None
    for index in range(questions):
        store.add_message(
            session_id=first.id, author_id=alice.id, role="user", content=f"question {index} ü\n"
        )
        reply = store.add_reply(first.id, "fake/m", "2030-01-01T00:00:00.000000+00:00")
        store.update_message(
            reply.id, content=f"answer {index}", status="complete", tokens_in=3, tokens_out=4
        )
        store.add_api_call(
            message_id=reply.id,
            session_id=first.id,
            user_id=alice.id,
            provider="fake",
            model="m",
            status="ok",
            latency_ms=5,
        )
    assert reply is not None
    store.add_message(session_id=gone.id, author_id=bob.id, role="user", content="lost")
    store.delete_session(gone.id)  # a gap in the ids of sessions and messages
    last = store.add_reply(fork.id, "fake/m", "2030-01-01T00:00:00.000000+00:00")  # streaming
    store.add_feedback(message_id=reply.id, user_id=bob.id, kind="good", text=None)
    interaction = store.add_interaction(
        user_id=bob.id, source="discord", kind="slash_command", name="ask", payload={"x": [1]}
    )
    store.update_interaction(interaction, status="ok")
    store.claim_idempotency_key(
        user_id=alice.id,
        key="key-1",
        endpoint="POST /chat",
        request_hash="hash",
        owner="owner",
        now="2025-01-01T00:00:00.000000+00:00",
        until="2025-01-01T00:01:00.000000+00:00",
        expired="2000-01-01T00:00:00.000000+00:00",
    )
    store.update_user(alice.id, current_session_id=first.id, temperature=0.3)
    store.set_setting("queue.size", "50", "Alice ✓", "2025-03-04T05:06:07.000008+00:00")
    store.set_setting("feedback.enabled", "false", None)
    store.update_user(bob.id, current_session_id=fork.id)
    # the newest session and message are deleted: their ids must not come back either
    tail = store.create_session(creator_id=alice.id, title="tail", origin="terminal")
    store.add_message(session_id=tail.id, author_id=alice.id, role="user", content="gone")
    store.delete_session(tail.id)
    return History(alice.id, bob.id, [first.id, fork.id], tail.id, last.id)


def older_database(where: str, keep: int = 4) -> None:
    """Make a blank database one that an older mschat left: only its first ``keep`` migrations."""
    location = parse(where)
    if location.backend == "sqlite":
        from sqlite_utils import Database

        from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS, migrations

        db = Database(location.target)
        migrations.apply(db, stop_before=KNOWN_MIGRATIONS[keep])
        db.conn.execute(f"PRAGMA user_version = {keep}")
        db.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.conn.commit()
        db.conn.close()
        return
    import psycopg

    from mschat.store.postgres import migrations as pg

    with psycopg.connect(location.target) as conn, conn.transaction():
        conn.execute(pg.MIGRATIONS_TABLE)
        for name, migrate in pg.MIGRATIONS[:keep]:
            migrate(conn)
            conn.execute(
                "INSERT INTO _mschat_migrations (migration_set, name) VALUES ('mschat', %s)",
                [name],
            )


def newer_database(store: Store) -> None:
    """Record a migration this mschat does not know, as a newer mschat would (then close)."""
    from tests.dbs import sql

    if store.backend == "sqlite":
        sql(
            store,
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('mschat', ?, '2030-01-01')",
            [FUTURE_MIGRATION],
        )
        sql(store, "PRAGMA user_version = 7")
    else:
        sql(
            store,
            "INSERT INTO _mschat_migrations (migration_set, name) VALUES ('mschat', ?)",
            [FUTURE_MIGRATION],
        )
    store.close()


def everything(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as ``read_rows`` gives them, and the live settings."""
    from mschat.store.contract import TABLES

    rows = {table: store.read_rows(table, limit=1_000_000) for table in TABLES}
    return {**rows, "settings": [row._asdict() for row in store.settings()]}
