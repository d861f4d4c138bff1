"""Whole-history copies between any two databases: ids, columns, checksums, re-runs, refusals.

Each test runs for the four directions (SQLite or PostgreSQL on either side).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from mschat.core.answer.turns import stamp
from mschat.store import Store, open_store
from mschat.store.contract import TABLES
from mschat.store.copy import CopyRefused, checksum, copy_history
from tests.conftest import MakeDatabase
from tests.histories import everything, fill_history

PAIRS = [
    ("sqlite", "sqlite"),
    ("sqlite", "postgresql"),
    ("postgresql", "sqlite"),
    ("postgresql", "postgresql"),
]


@pytest.fixture(params=PAIRS, ids=["->".join(pair) for pair in PAIRS])
def where(request: pytest.FixtureRequest, make_database: MakeDatabase) -> tuple[str, str]:
    """Where a source and an empty destination are (mschat databases without rows)."""
    source_backend, dest_backend = request.param
    return (
        make_database(source_backend, "source", migrated=True),
        make_database(dest_backend, "dest", migrated=True),
    )


@pytest.fixture
def stores(where: tuple[str, str]) -> Iterator[tuple[Store, Store]]:
    """The source and the destination, opened."""
    source, dest = open_store(where[0]), open_store(where[1])
    yield source, dest
    source.close()
    dest.close()


def counts(store: Store) -> dict[str, int]:
    return {
        **{table: store.count_rows(table) for table in TABLES},
        "settings": len(store.settings()),
    }


def test_a_copy_keeps_every_row_and_column_with_its_id(stores: tuple[Store, Store]):
    source, dest = stores
    history = fill_history(source)
    report = copy_history(source, dest, batch=2)
    assert report.verified and report.changed and not report.resumed
    assert {t: r.inserted for t, r in report.tables.items()} == counts(source)
    assert everything(dest) == everything(source)  # field by field, ids included
    for result in report.tables.values():
        assert result.source_checksum == result.dest_checksum
        assert len(result.source_checksum) == 64
    # the references that point forward were written once their rows were in
    assert dest.get_user(history.alice).current_session_id == history.sessions[0]
    assert dest.get_session(history.sessions[1]).forked_from_id == history.sessions[0]
    assert [s.message_count for s in map(dest.get_session, history.sessions)] == [6, 1]
    assert len(dest.search("question", user_id=None)) == 3  # indexed as any insert


def test_new_ids_never_take_a_copied_or_a_deleted_id(stores: tuple[Store, Store]):
    source, dest = stores
    history = fill_history(source)
    copy_history(source, dest)
    # the deleted session's id (the source's last) is not handed out again
    assert history.deleted_session > max(history.sessions)
    session = dest.create_session(creator_id=history.bob, title="new", origin="api")
    assert session.id == history.deleted_session + 1
    message = dest.add_message(session_id=session.id, role="user", content="new")
    assert message.id == source.last_id("messages") + 1 > history.last_message
    user = dest.create_user(kind="api", external_id="new", name="new", status="new")
    assert user.id == history.bob + 1
    assert dest.add_feedback(message_id=message.id, user_id=user.id, kind="good") == 2
    assert dest.add_api_call(status="ok") > source.last_id("api_calls")


def test_a_round_trip_sqlite_postgresql_sqlite_is_byte_equal(make_database: MakeDatabase):
    first_path, last_path = make_database("sqlite", "first"), make_database("sqlite", "last")
    first = open_store(first_path)
    fill_history(first, questions=5)
    middle = open_store(make_database("postgresql", migrated=True))
    last = open_store(last_path)
    there = copy_history(first, middle, batch=3)
    back = copy_history(middle, last, batch=4)
    assert there.verified and back.verified
    sums = {t: (r.source_checksum, r.dest_checksum) for t, r in there.tables.items()}
    assert sums == {t: (r.source_checksum, r.dest_checksum) for t, r in back.tables.items()}
    assert everything(last) == everything(first)
    for store in (first, middle, last):
        store.close()
    assert sqlite_rows(last_path) == sqlite_rows(first_path)


def sqlite_rows(path: str) -> str:
    """Every row of every table and the id counters, with SQLite's own types (1 is not 1.0)."""
    conn = sqlite3.connect(path)
    tables = [*TABLES, "settings", "sqlite_sequence"]
    dump = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    conn.close()
    return repr(dump)


def test_a_second_run_changes_nothing_and_says_so(
    stores: tuple[Store, Store], where: tuple[str, str]
):
    source, dest = stores
    fill_history(source)
    first = copy_history(source, dest)
    watcher = open_store(where[1])  # sees every commit of another connection
    before = (everything(dest), watcher.data_version())
    again = copy_history(source, dest)
    assert not again.changed and again.verified
    assert (everything(dest), watcher.data_version()) == before
    assert {t: r.source_checksum for t, r in again.tables.items()} == {
        t: r.source_checksum for t, r in first.tables.items()
    }
    watcher.close()


def test_an_interrupted_copy_resumes_where_it_stopped(stores: tuple[Store, Store]):
    source, dest = stores
    history = fill_history(source, questions=6)
    total = source.count_rows("messages")
    insert = dest.insert_rows
    calls = {"messages": 0}

    def killed_in_the_third_batch(table: str, rows: Any, *, replace: bool = False) -> int:
        written = insert(table, rows, replace=replace)
        if table == "messages" and rows:
            calls["messages"] += 1
            if calls["messages"] == 3:
                raise KeyboardInterrupt  # after its rows were written, before the commit
        return written

    dest.insert_rows = killed_in_the_third_batch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        copy_history(source, dest, batch=2)
    dest.insert_rows = insert  # type: ignore[method-assign]
    assert dest.count_rows("messages") == 4  # two whole batches; the third rolled back
    assert dest.get_user(history.alice).current_session_id is None  # written last
    report = copy_history(source, dest, batch=2)  # no flag: it is a part of the source
    assert report.resumed and report.verified
    assert report.tables["messages"].inserted == total - 4
    assert report.tables["users"].inserted == 0
    assert everything(dest) == everything(source)


def test_a_copy_catches_up_with_a_source_used_since(stores: tuple[Store, Store]):
    source, dest = stores
    history = fill_history(source)
    copy_history(source, dest)
    source.update_session(history.sessions[0], title="renamed")
    source.add_message(session_id=history.sessions[1], role="user", content="later")
    source.update_user(history.bob, current_session_id=history.sessions[0])
    report = copy_history(source, dest)
    assert report.verified and report.resumed
    assert report.tables["messages"].inserted == 1
    assert report.tables["sessions"].updated == 2  # the title; the fork's message count
    assert report.tables["users"].updated == 1  # bob's current session
    assert everything(dest) == everything(source)


def test_a_destination_with_rows_of_its_own_is_refused_unless_told(stores: tuple[Store, Store]):
    source, dest = stores
    fill_history(source)
    for table in ("users", "sessions"):
        dest.advance_ids(table, 100)
    carol = dest.create_user(kind="local", external_id="carol", name="Carol", status="active")
    own = dest.create_session(creator_id=carol.id, title="carol's", origin="terminal")
    before = everything(dest)
    with pytest.raises(CopyRefused) as refused:
        copy_history(source, dest)
    assert f"holds 2 rows the source has not (first: users {carol.id})" in str(refused.value)
    assert "--into-nonempty" in str(refused.value) and "\n" not in str(refused.value)
    assert everything(dest) == before
    report = copy_history(source, dest, into_nonempty=True)
    assert report.verified
    assert (report.tables["users"].own_rows, report.tables["sessions"].own_rows) == (1, 1)
    assert dest.get_session(own.id).title == "carol's"
    assert dest.count_rows("users") == source.count_rows("users") + 1


def test_other_rows_under_the_sources_ids_are_refused_even_when_told(
    stores: tuple[Store, Store],
):
    source, dest = stores
    fill_history(source)
    dest.create_user(kind="local", external_id="mallory", name="Mallory", status="active")
    before = everything(dest)
    for told in (False, True):
        with pytest.raises(CopyRefused, match=r"other rows under 1 of the source's ids.*users 1"):
            copy_history(source, dest, into_nonempty=told)
        assert everything(dest) == before


def test_a_new_row_may_not_take_the_unique_key_of_a_row_of_the_destination(
    stores: tuple[Store, Store],
):
    source, dest = stores
    fill_history(source)
    dest.advance_ids("users", 100)
    dest.create_user(kind="local", external_id="alice", name="Other Alice", status="active")
    with pytest.raises(CopyRefused, match="users 1"):
        copy_history(source, dest, into_nonempty=True)
    assert dest.count_rows("sessions") == 0


def test_a_database_is_not_copied_into_itself(make_database: MakeDatabase):
    path = make_database("sqlite")
    one, other = open_store(path), open_store(path)
    fill_history(one)
    with pytest.raises(CopyRefused, match="same database"):
        copy_history(one, other)
    one.close()
    other.close()


def test_checksums_read_times_flags_and_nulls_the_same_way_on_every_backend():
    as_sqlite = {"id": 1, "created": "2025-01-02T03:04:05+00:00", "public": 1, "model": None}
    as_text = {"id": 1, "created": "2025-01-02T03:04:05.000000Z", "public": True, "model": None}
    as_postgres = {
        "id": 1,
        "created": "2025-01-02T03:04:05.000000+00:00",
        "public": 1,
        "model": None,
    }
    assert checksum(iter([as_sqlite])) == checksum(iter([as_text])) == checksum(iter([as_postgres]))
    assert checksum(iter([{**as_sqlite, "model": ""}])) != checksum(iter([as_sqlite]))
    assert checksum(iter([{**as_sqlite, "public": 0}])) != checksum(iter([as_sqlite]))
    # a message's text that looks like a time is compared as it is
    assert checksum(iter([{"content": "2025-01-02T03:04:05Z"}])) != checksum(
        iter([{"content": "2025-01-02T03:04:05.000000+00:00"}])
    )


def test_live_settings_are_copied_but_not_the_pause(stores: tuple[Store, Store]):
    source, dest = stores
    fill_history(source)
    source.set_setting("queue.paused", "true", "admin")  # paused to be copied
    report = copy_history(source, dest)
    settings = report.tables["settings"]
    assert (settings.source_rows, settings.inserted, settings.updated) == (2, 2, 0)
    assert settings.verified and len(settings.source_checksum) == 64
    copied = [row for row in source.settings() if row.key != "queue.paused"]
    assert dest.settings() == copied  # values, times of change and who changed them
    # changed on the source since: the source's value wins; unset there: DST keeps its own
    source.set_setting("queue.size", "80", "admin")
    source.unset_setting("feedback.enabled")
    with pytest.raises(CopyRefused, match=r"rows the source has not \(first: settings feedback"):
        copy_history(source, dest)
    again = copy_history(source, dest, into_nonempty=True)
    assert again.verified and again.tables["settings"].updated == 1
    assert again.tables["settings"].own_rows == 1
    assert {row.key: row.value for row in dest.settings()} == {
        "feedback.enabled": "false",
        "queue.size": "80",
    }


def test_a_source_in_use_is_refused_unless_forced(stores: tuple[Store, Store]):
    source, dest = stores
    history = fill_history(source)
    now, soon = stamp(timedelta(0)), stamp(timedelta(minutes=1))
    entry = source.enqueue(history.alice, "fake", 0, now, soon, None)
    assert entry is not None
    source.enqueue(history.bob, "fake", 0, now, stamp(timedelta(seconds=-1)), None)  # dead
    source.save_reply_surface(history.last_message, "message", soon, channel_id="1")
    with pytest.raises(CopyRefused) as refused:
        copy_history(source, dest)
    message = str(refused.value)
    assert "1 question(s) in its queue and 1 answer(s) being written on Discord" in message
    assert "ops pause" in message and "--force" in message and "\n" not in message
    assert counts(dest) == dict.fromkeys(counts(dest), 0)  # nothing was written
    source.leave_queue(entry)
    with pytest.raises(CopyRefused, match="0 question"):
        copy_history(source, dest)  # the surface alone
    report = copy_history(source, dest, force=True)
    assert report.verified and everything(dest) == everything(source)
    # the queue and the surfaces stay behind
    assert dest.count_reply_surfaces() == 0 and source.count_reply_surfaces() == 1
    assert dest.queue_status(now).waiting == 0
