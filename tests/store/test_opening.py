"""Opening a file: what mschat must not use stays untouched; what it makes is private."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mschat.core.errors import DatabaseError
from mschat.store.sqlite import SCHEMA_VERSION
from mschat.store.sqlite import SQLiteStore as Store

pytestmark = pytest.mark.sqlite_only  # files, journal modes, file modes


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """The file's bytes (hashed) and the names in its directory."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(path.parent))


def journal(path: Path, mode: str) -> None:
    """Put a closed database file in ``mode`` ('wal' or 'delete')."""
    conn = sqlite3.connect(path)
    assert conn.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0] == mode
    conn.close()


def one_line(error: pytest.ExceptionInfo[DatabaseError]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_a_database_from_a_newer_mschat_is_refused_and_not_one_byte_changes(
    tmp_path: Path, mode: str
):
    path = tmp_path / "future.db"
    store = Store.open(path)
    store.conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('mschat', 'm999_from_the_future', '2030-01-01')"
    )
    store.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.conn.commit()
    store.close()
    journal(path, mode)
    before = fingerprint(path)
    with pytest.raises(DatabaseError) as error:
        Store.open(path)
    assert "newer mschat" in one_line(error) and str(path) in one_line(error)
    assert fingerprint(path) == before  # no journal-mode switch, no -wal/-shm beside it


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_unknown_migrations_are_refused_before_any_write(tmp_path: Path, mode: str):
    """A schema version that looks old but records a migration this mschat does not know."""
    path = tmp_path / "branch.db"
    store = Store.open(path)
    store.conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('mschat', 'm999_from_the_future', '2030-01-01')"
    )
    store.conn.execute("PRAGMA user_version = 5")
    store.conn.execute("PRAGMA application_id = 0")
    store.conn.commit()
    store.close()
    journal(path, mode)
    before = fingerprint(path)
    with pytest.raises(DatabaseError, match=r"newer mschat.*m999_from_the_future"):
        Store.open(path)
    assert fingerprint(path) == before


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_another_applications_database_is_refused_not_given_mschats_tables(
    tmp_path: Path, mode: str
):
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE foo (x)")
    conn.execute("INSERT INTO foo VALUES (1)")
    conn.commit()
    conn.close()
    journal(path, mode)
    before = fingerprint(path)
    with pytest.raises(DatabaseError) as error:
        Store.open(path)
    assert "another application's SQLite database" in one_line(error)
    assert "foo" in one_line(error) and str(path) in one_line(error)
    assert fingerprint(path) == before
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("foo",)]


def test_a_database_marked_by_another_application_is_refused(tmp_path: Path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = fingerprint(path)
    with pytest.raises(DatabaseError, match=r"another application.s.*0x4d2"):
        Store.open(path)
    assert fingerprint(path) == before


def test_a_file_that_is_not_sqlite_is_one_line(tmp_path: Path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    before = fingerprint(path)
    with pytest.raises(DatabaseError) as error:
        Store.open(path)
    assert "not an SQLite database" in one_line(error) and str(path) in one_line(error)
    assert fingerprint(path) == before


def test_an_empty_file_and_a_blank_sqlite_database_are_made_mschat_databases(tmp_path: Path):
    empty = tmp_path / "empty.db"
    empty.touch()
    blank = tmp_path / "blank.db"
    sqlite3.connect(blank).execute("PRAGMA user_version = 0").connection.close()
    for path in (empty, blank):
        store = Store.open(path)
        assert store.table_counts()["sessions"] == 0
        store.close()


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_directories_are_0700_and_the_database_files_0600(tmp_path: Path, umask: int):
    path = tmp_path / "new-home" / "data" / "mschat.db"
    store = Store.open(path)
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    store.create_session(creator_id=user.id, title="t", origin="terminal")
    files = {p.name: mode_of(p) for p in path.parent.iterdir()}
    assert {"mschat.db", "mschat.db-wal", "mschat.db-shm"} <= set(files)
    assert set(files.values()) == {0o600}, files
    assert mode_of(tmp_path / "new-home") == mode_of(path.parent) == 0o700
    store.close()


def test_an_existing_database_keeps_its_mode(tmp_path: Path, umask: int):
    """Made group-readable on purpose (a bot account and its admin): left as it is."""
    path = tmp_path / "shared.db"
    Store.open(path).close()
    os.chmod(path, 0o640)
    Store.open(path).close()
    assert mode_of(path) == 0o640
