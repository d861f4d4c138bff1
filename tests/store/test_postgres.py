"""What only the PostgreSQL backend has: its schema, refusals, pool, leases under concurrency."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from mschat.core.errors import DatabaseError
from mschat.store import open_store
from mschat.store.postgres import PostgresStore
from mschat.store.postgres.migrations import KNOWN_MIGRATIONS
from tests.dbs import sql
from tests.pg import Cluster


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    yield store
    store.close()


def catalog(url: str) -> list[tuple[Any, ...]]:
    """Every table, column, index, constraint, trigger, view and migration row of a database."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            SELECT 'column', table_name::text, column_name::text, data_type::text,
                   coalesce(column_default, '') || coalesce(generation_expression, '')
            FROM information_schema.columns WHERE table_schema = 'public'
            UNION ALL SELECT 'index', tablename::text, indexname::text, indexdef, ''
            FROM pg_indexes WHERE schemaname = 'public'
            UNION ALL SELECT 'constraint', conrelid::regclass::text, conname::text,
                   pg_get_constraintdef(oid), ''
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace
            UNION ALL SELECT 'trigger', tgrelid::regclass::text, tgname::text, '', ''
            FROM pg_trigger WHERE NOT tgisinternal
            UNION ALL SELECT 'view', viewname::text, definition, '', ''
            FROM pg_views WHERE schemaname = 'public'
            UNION ALL SELECT 'relation', relname::text, relkind::text, '', ''
            FROM pg_class WHERE relnamespace = 'public'::regnamespace
            ORDER BY 1, 2, 3, 4
            """
        ).fetchall() + [("migration", *row, "") for row in _migrations(conn)]


def _migrations(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    try:
        return conn.execute(
            "SELECT migration_set, name, applied_at::text FROM _mschat_migrations"
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        return []


def dump(cluster: Cluster, url: str) -> str:
    """``pg_dump`` of a database: schema and data."""
    dbname = url.rsplit("/", 1)[1]
    done = subprocess.run(
        [
            str(cluster.binaries / "pg_dump"),
            *("-h", "127.0.0.1", "-p", str(cluster.port)),
            "-U",
            "postgres",
            "--no-comments",
            dbname,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # pg_dump guards its output with a random key per run
    return "\n".join(line for line in done.stdout.splitlines() if "restrict " not in line)


def test_a_blank_database_gets_the_whole_schema(pg_blank_url: str):
    store = open_store(pg_blank_url)
    assert store.applied_migrations() == KNOWN_MIGRATIONS
    tables = {
        row[0] for row in sql(store, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert tables == {
        "users",
        "sessions",
        "messages",
        "api_calls",
        "feedback",
        "interactions",
        "idempotency_keys",
        "settings",
        "queue",
        "reply_surfaces",
        "attachments",
        "tool_calls",
        "tool_grants",
        "_mschat_migrations",
    }
    # ids come from identity columns, which never hand an id out twice (settings: by key,
    # reply_surfaces: by their reply)
    identities = sql(
        store,
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'id' AND is_identity = 'YES'",
    )
    assert {row[0] for row in identities} >= tables - {
        "_mschat_migrations",
        "settings",
        "reply_surfaces",
    }
    # every foreign key has an index that starts with its column
    missing = sql(
        store,
        """
        SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace AND NOT EXISTS (
            SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])
        """,
    )
    assert missing == []
    indexes = {row[0]: row[1] for row in sql(store, "SELECT indexname, indexdef FROM pg_indexes")}
    assert "USING gin (search)" in indexes["idx_messages_search"]
    assert "WHERE (status = 'streaming'::text)" in indexes["idx_messages_streaming"]
    # the JSON view of dialogues, and message counts kept by triggers
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    session = store.create_session(creator_id=user.id, title="t", origin="terminal")
    store.add_message(session_id=session.id, author_id=user.id, role="user", content="hello")
    store.add_message(session_id=session.id, role="assistant", content="hi")
    ((dialogue, public),) = sql(
        store, "SELECT dialogue, public FROM session_dialogues WHERE session_id = ?", [session.id]
    )
    assert [(m["role"], m["author"], m["content"]) for m in dialogue] == [
        ("user", "me", "hello"),
        ("assistant", None, "hi"),
    ]
    assert public is False
    assert store.get_session(session.id).message_count == 2
    store.delete_messages_from(session.id, 0)
    assert store.get_session(session.id).message_count == 0
    store.close()


def test_times_are_iso_text_and_flags_booleans(store: PostgresStore):
    user = store.create_user(kind="local", external_id="me", name="me", status="active", admin=1)
    assert user.admin is True and user.show_public is False
    created = "2025-01-02T03:04:05.500000+00:00"
    session = store.create_session(
        creator_id=user.id, title="t", origin="terminal", created=created
    )
    assert store.get_session(session.id).created == created
    # ISO text with another offset is the same instant, given back in UTC
    store.update_session(session.id, updated="2025-01-02T05:04:05+02:00")
    assert store.get_session(session.id).updated == "2025-01-02T03:04:05.000000+00:00"
    ((kind,),) = sql(
        store,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'sessions' AND column_name = 'created'",
    )
    assert kind == "timestamp with time zone"


@pytest.mark.parametrize("what", ["unknown migration", "another application"])
def test_a_database_mschat_must_not_use_is_refused_untouched(
    pg_cluster: Cluster, pg_url: str, pg_blank_url: str, what: str
):
    if what == "unknown migration":
        url = pg_url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO _mschat_migrations (migration_set, name) "
                "VALUES ('mschat', 'm999_from_the_future')"
            )
        expected = "written by a newer mschat (unknown migrations: m999_from_the_future)"
    else:
        url = pg_blank_url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, text text)")
            conn.execute("INSERT INTO notes (text) VALUES ('mine')")
        expected = "holds another application's tables, not mschat's (notes)"
    before = (dump(pg_cluster, url), catalog(url))
    with pytest.raises(DatabaseError) as error:
        open_store(url)
    message = str(error.value)
    assert expected in message and "it was left unchanged" in message and "\n" not in message
    assert (dump(pg_cluster, url), catalog(url)) == before


def test_a_password_never_shows(pg_cluster: Cluster, pg_url: str):
    secret = "s3cret-pass"  # trust authentication ignores it
    url = pg_url.replace("postgres@", f"postgres:{secret}@")
    store = open_store(url)
    try:
        for shown in (repr(store), store.url, store.identity, str(store.__dict__.get("_identity"))):
            assert secret not in shown
        assert store.url == pg_url
    finally:
        store.close()
    closed = f"postgresql://postgres:{secret}@127.0.0.1:1/nothing"  # nothing listens on port 1
    with pytest.raises(DatabaseError) as error:
        open_store(closed)
    assert secret not in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith("cannot connect to database ")
    missing = pg_url.rsplit("/", 1)[0].replace("postgres@", f"postgres:{secret}@") + "/missing"
    with pytest.raises(DatabaseError, match='database "missing" does not exist') as error:
        open_store(missing)
    assert secret not in str(error.value)


def test_a_write_block_holds_one_connection_per_thread_and_nested_blocks_join_it(
    store: PostgresStore,
):
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    with store.write() as outer:
        session = store.create_session(creator_id=user.id, title="inside", origin="terminal")
        with store.write() as inner:
            assert inner is outer
            store.add_message(session_id=session.id, role="user", content="one")
        # another thread sees nothing before the commit
        with ThreadPoolExecutor(1) as other:
            assert other.submit(store.table_counts).result()["sessions"] == 0
    assert store.table_counts()["messages"] == 1

    with pytest.raises(RuntimeError), store.write():
        store.create_session(creator_id=user.id, title="rolled back", origin="terminal")
        raise RuntimeError("boom")
    assert [s.title for s in store.list_sessions(None)] == ["inside"]


def test_write_blocks_of_several_threads_run_at_once(store: PostgresStore):
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    inside = threading.Barrier(store.threads, timeout=10)

    def block(index: int) -> int:
        with store.write():
            session = store.create_session(creator_id=user.id, title=f"s{index}", origin="api")
            inside.wait()  # every thread holds an open transaction at this point
            store.add_message(session_id=session.id, role="user", content="x")
        return session.id

    with ThreadPoolExecutor(store.threads) as pool:
        ids = list(pool.map(block, range(store.threads)))
    assert len(set(ids)) == store.threads
    assert store.table_counts()["messages"] == store.threads


async def test_the_manager_gets_as_many_store_threads_as_the_pool_has(pg_url: str):
    from mschat.config import load_config
    from mschat.core.services import build_services

    services = build_services(load_config(db=pg_url))
    try:
        assert services.store.threads > 1
        assert services.manager._executor._max_workers == services.store.threads
        me = await services.manager.local_user()
        sessions = await asyncio.gather(
            *(services.manager.create_session(me, title=f"s{i}") for i in range(20))
        )
        assert len({s.id for s in sessions}) == 20
    finally:
        await services.aclose()


def test_one_lease_holder_among_many_connections(pg_url: str):
    stores = [open_store(pg_url) for _ in range(8)]
    try:
        user = stores[0].create_user(kind="local", external_id="me", name="me", status="active")
        session = stores[0].create_session(creator_id=user.id, title="t", origin="terminal")
        start = threading.Barrier(len(stores), timeout=10)

        def take(index: int) -> bool:
            start.wait()
            return stores[index].take_lease(
                session.id,
                f"owner-{index}",
                "2025-01-01T00:00:00+00:00",
                "2099-01-01T00:00:00+00:00",
            )

        for _ in range(5):
            sql(stores[0], "UPDATE sessions SET lease_owner = NULL, lease_until = NULL")
            with ThreadPoolExecutor(len(stores)) as pool:
                taken = list(pool.map(take, range(len(stores))))
            assert taken.count(True) == 1
    finally:
        for store in stores:
            store.close()


def test_one_claim_of_an_idempotency_key_among_many_connections(pg_url: str):
    stores = [open_store(pg_url) for _ in range(8)]
    try:
        user = stores[0].create_user(kind="api", external_id="bob", name="bob", status="active")
        start = threading.Barrier(len(stores), timeout=10)

        def claim(index: int) -> tuple[bool, dict[str, Any]]:
            start.wait()
            return stores[index].claim_idempotency_key(
                user_id=user.id,
                key="k1",
                endpoint="POST /chat",
                request_hash="h",
                owner=f"owner-{index}",
                now="2025-01-01T00:00:00+00:00",
                until="2099-01-01T00:00:00+00:00",
                expired="2000-01-01T00:00:00+00:00",
            )

        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(claim, range(len(stores))))
        winners = [row["owner"] for claimed, row in results if claimed]
        assert len(winners) == 1
        assert {row["owner"] for _, row in results} == set(winners)  # everyone sees the winner
    finally:
        for store in stores:
            store.close()


def test_data_version_moves_when_another_connection_writes(pg_url: str):
    watcher, writer = open_store(pg_url), open_store(pg_url)
    try:
        before = watcher.data_version()
        assert watcher.data_version() == before  # reading changes nothing
        writer.create_user(kind="api", external_id="bob", name="bob", status="active")
        assert watcher.data_version() != before
    finally:
        watcher.close()
        writer.close()


def _open(url: str) -> None:
    open_store(url).close()


@pytest.mark.timeout(120)
def test_two_processes_opening_a_blank_database_migrate_it_once(pg_blank_url: str):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open, args=(pg_blank_url,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(90)
        assert worker.exitcode == 0
    store = open_store(pg_blank_url)
    assert store.applied_migrations() == KNOWN_MIGRATIONS
    store.close()


def test_a_huge_message_of_distinct_words_is_stored_and_found_by_its_beginning(
    store: PostgresStore,
):
    """A tsvector holds 1 MB: more distinct words than that must not lose the message."""
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    session = store.create_session(creator_id=user.id, title="t", origin="terminal")
    content = "needle " + " ".join(f"w{i}x" for i in range(400_000))
    message = store.add_message(
        session_id=session.id, author_id=user.id, role="user", content=content
    )
    assert store.get_message(message.id).content == content
    (hit,) = store.search("needle", user_id=user.id)
    assert hit.message_id == message.id and hit.snippet.startswith("needle w0x")


@pytest.mark.parametrize("order", ["newest", "relevance"])
def test_a_search_reads_past_the_newest_messages_through_the_index(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, order: str
):
    monkeypatch.setattr("mschat.store.postgres.store.RECENT", 3)
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    session = store.create_session(creator_id=user.id, title="t", origin="terminal")
    ids = [
        store.add_message(
            session_id=session.id, role="user", content=f"common {'rare' if i < 2 else ''}"
        ).id
        for i in range(10)
    ]
    newest = sorted(ids, reverse=True)
    hits = [h.message_id for h in store.search("common", user_id=user.id, order=order)]
    assert sorted(hits, reverse=True) == newest
    if order == "newest":
        assert hits == newest
        pages = [store.search("common", user_id=user.id, limit=4, offset=n) for n in (0, 4, 8)]
        assert [h.message_id for page in pages for h in page] == newest
    assert [h.message_id for h in store.search("rare", user_id=user.id, order=order)] == [
        ids[1],
        ids[0],
    ]
