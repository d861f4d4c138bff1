"""A SQLite database's schema and counts, read without writing or creating anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mschat.core.errors import DatabaseError
from mschat.store.contract import TABLES
from mschat.store.schema import SchemaStatus
from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS
from mschat.store.sqlite.store import (
    _SQLITE_MAGIC,
    APPLICATION_ID,
    MIGRATION_SET,
    _foreign,
    _read_header,
)


def inspect(path: str) -> SchemaStatus:
    """The schema of the file at ``path``: a missing or empty file is blank.

    A file that is not SQLite, or another application's database, is refused.
    """
    known = tuple(KNOWN_MIGRATIONS)
    header = _read_header(Path(path))
    if not header:
        return SchemaStatus("sqlite", path, (), known)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise DatabaseError(f"{path} is not an SQLite database")
    application_id = int.from_bytes(header[68:72], "big", signed=True)
    if application_id not in (0, APPLICATION_ID):
        raise _foreign(path, f"its application id is {application_id:#x}")
    marked = int.from_bytes(header[60:64], "big", signed=True) if application_id else 0
    conn = _reader(Path(path))
    try:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"
            )
        }
        if not tables:
            return SchemaStatus("sqlite", path, (), known, marked)
        if "_sqlite_migrations" not in tables:
            listed = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
            raise _foreign(path, f"its tables: {listed}")
        applied = tuple(
            row[0]
            for row in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
                [MIGRATION_SET],
            )
        )
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in TABLES
            if table in tables
        }
        return SchemaStatus("sqlite", path, applied, known, marked, counts)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot read database {path}: {exc}") from exc
    finally:
        conn.close()


def _reader(path: Path) -> sqlite3.Connection:
    """A connection that only reads the file (it must exist).

    Opened for writing if it may be, though nothing is written: the last
    connection to close then removes the -wal and -shm files a read made, as every
    mschat does. A file that cannot be written is read as it is.
    """
    uri = path.resolve().as_uri()
    for mode in ("mode=rw", "mode=ro"):
        try:
            conn = sqlite3.connect(f"{uri}?{mode}", uri=True)
        except sqlite3.OperationalError:
            continue
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
    return sqlite3.connect(f"{uri}?immutable=1", uri=True)
