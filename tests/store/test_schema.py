"""A database's schema: read without changing it; an older one refused unless upgrading."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from mschat.core.errors import DatabaseError
from mschat.store import OutdatedSchema, inspect_schema, open_store
from mschat.store.contract import TABLES
from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS
from tests.conftest import MakeDatabase
from tests.histories import FUTURE_MIGRATION, newer_database, older_database

PENDING = KNOWN_MIGRATIONS[4:]


def test_a_blank_database_is_reported_and_not_created(backend: str, make_database: MakeDatabase):
    where = make_database(backend)
    info = inspect_schema(where)
    assert (info.state, info.version, info.applied, info.counts) == ("blank", 0, (), {})
    assert info.pending == KNOWN_MIGRATIONS
    if backend == "sqlite":
        assert not Path(where).exists()


def test_an_older_schema_is_reported_with_its_pending_migrations(
    backend: str, make_database: MakeDatabase
):
    where = make_database(backend)
    older_database(where, keep=4)
    info = inspect_schema(where)
    assert (info.state, info.version) == ("outdated", 4)
    assert list(info.applied) == KNOWN_MIGRATIONS[:4] and info.pending == PENDING
    # the tables of later migrations are not there yet
    later = {"idempotency_keys", "attachments", "tool_calls", "tool_grants"}
    assert set(info.counts) == set(TABLES) - later


def test_a_current_and_a_newer_schema_are_reported(backend: str, make_database: MakeDatabase):
    where = make_database(backend)
    store = open_store(where)
    store.create_user(kind="local", external_id="me", name="me", status="active")
    info = inspect_schema(where)
    assert (info.state, info.version, info.pending) == ("current", len(KNOWN_MIGRATIONS), [])
    assert info.counts == {table: int(table == "users") for table in TABLES}
    assert info.url == store.url  # a URL's password never shows
    newer_database(store)
    info = inspect_schema(where)
    assert (info.state, info.unknown) == ("newer", [FUTURE_MIGRATION])


def test_another_applications_database_is_one_line(backend: str, make_database: MakeDatabase):
    where = make_database(backend)
    if backend == "sqlite":
        conn = sqlite3.connect(where)
        conn.execute("CREATE TABLE notes (x)")
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(where, autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (x int)")
    with pytest.raises(DatabaseError, match="another application's") as error:
        inspect_schema(where)
    assert "notes" in str(error.value) and "\n" not in str(error.value)


def test_without_upgrading_an_older_schema_is_refused_and_left_as_it_was(
    backend: str, make_database: MakeDatabase
):
    where = make_database(backend)
    older_database(where, keep=4)
    before = inspect_schema(where)
    with pytest.raises(OutdatedSchema) as error:
        open_store(where, upgrade=False)
    message = str(error.value)
    assert "older schema" in message and ", ".join(PENDING) in message
    assert "mschat db upgrade" in message and "--upgrade" in message and "\n" not in message
    assert inspect_schema(where) == before
    store = open_store(where)  # a one-shot command upgrades it, as always
    assert store.applied_migrations() == KNOWN_MIGRATIONS
    store.close()


def test_without_upgrading_a_blank_database_is_created(backend: str, make_database: MakeDatabase):
    where = make_database(backend)
    store = open_store(where, upgrade=False)
    assert store.applied_migrations() == KNOWN_MIGRATIONS
    store.close()
    assert inspect_schema(where).state == "current"
    open_store(where, upgrade=False).close()  # and a current one opens


def test_a_newer_schema_is_refused_whether_upgrading_or_not(
    backend: str, make_database: MakeDatabase
):
    where = make_database(backend)
    newer_database(open_store(where))
    for upgrade in (True, False):
        with pytest.raises(DatabaseError, match="newer mschat"):
            open_store(where, upgrade=upgrade)
    assert inspect_schema(where).state == "newer"


@pytest.mark.sqlite_only
def test_reading_the_schema_changes_not_one_byte_of_the_file(tmp_path: Path):
    path = tmp_path / "mschat.db"
    store = open_store(path)
    store.create_user(kind="local", external_id="me", name="me", status="active")
    store.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(tmp_path))
    assert inspect_schema(path).counts["users"] == 1
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(tmp_path))) == before


@pytest.mark.sqlite_only
def test_an_older_mschat_file_without_schema_marks_is_outdated(tmp_path: Path):
    """Before schema marks, an mschat file had neither user_version nor application_id."""
    path = str(tmp_path / "old.db")
    older_database(path, keep=3)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.execute("PRAGMA application_id = 0")
    conn.commit()
    conn.close()
    assert inspect_schema(path).state == "outdated"
    with pytest.raises(OutdatedSchema):
        open_store(path, upgrade=False)
