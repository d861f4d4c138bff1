"""A PostgreSQL database's schema and counts, read without writing anything."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import psycopg

from mschat.core.errors import DatabaseError
from mschat.redact import redact_text
from mschat.store.contract import TABLES
from mschat.store.location import shown
from mschat.store.postgres.migrations import KNOWN_MIGRATIONS
from mschat.store.postgres.store import CONNECT_TIMEOUT, MIGRATION_SET, OPTIONS, identity
from mschat.store.schema import SchemaStatus


def inspect(url: str) -> SchemaStatus:
    """The schema of the database at ``url``: one without tables is blank.

    Another application's database (tables, but no mschat migrations) is refused.
    """
    where = shown(url)
    try:
        with psycopg.connect(
            url, autocommit=True, options=OPTIONS, connect_timeout=CONNECT_TIMEOUT
        ) as conn:
            where = identity(conn)
            return _inspect(conn, where)
    except psycopg.Error as exc:
        reason = redact_text(" ".join(str(exc).split()), [urlsplit(url).password])
        raise DatabaseError(f"cannot read database {where}: {reason}") from None


def _inspect(conn: psycopg.Connection[Any], where: str) -> SchemaStatus:
    known = tuple(KNOWN_MIGRATIONS)
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }
    if not tables:
        return SchemaStatus("postgresql", where, (), known)
    if "_mschat_migrations" not in tables:
        listed = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise DatabaseError(
            f"database {where} holds another application's tables, not mschat's ({listed})"
        )
    applied = tuple(
        row[0]
        for row in conn.execute(
            "SELECT name FROM _mschat_migrations WHERE migration_set = %s ORDER BY id",
            [MIGRATION_SET],
        )
    )
    counts = {}
    for table in TABLES:
        if table in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
            counts[table] = int(row[0]) if row else 0
    return SchemaStatus("postgresql", where, applied, known, 0, counts)
