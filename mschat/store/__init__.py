"""The store: one contract (``Store``), a SQLite and a PostgreSQL backend.

:func:`open_store` picks the backend from a path or URL. Nothing here imports a
backend before it is needed: a cold ``mschat ask`` on SQLite imports no
PostgreSQL driver.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from mschat.core.errors import DatabaseError
from mschat.store.contract import Store
from mschat.store.location import parse
from mschat.store.schema import OutdatedSchema, SchemaStatus

__all__ = ["OutdatedSchema", "SchemaStatus", "Store", "inspect_schema", "open_store"]


def open_store(where: str | Path, *, upgrade: bool = True) -> Store:
    """Open the database at a path, ``sqlite:///path`` or ``postgresql://…``, migrating it.

    ``upgrade=False`` (the servers): a database at an older schema is refused with
    one ``OutdatedSchema`` line instead of upgraded; a blank one is still created.
    A database of a newer mschat is refused either way. Any other URL scheme is
    one ``ConfigError`` line.
    """
    location = parse(where)
    if location.backend == "postgresql":
        return _postgres().PostgresStore.open(location.target, upgrade=upgrade)
    from mschat.store.sqlite import SQLiteStore

    return SQLiteStore.open(location.target, upgrade=upgrade)


def inspect_schema(where: str | Path) -> SchemaStatus:
    """The schema and row counts of a database, read without changing or creating it.

    Another application's database (or a file that is not SQLite) is one
    ``DatabaseError`` line; a newer mschat's is reported, not refused.
    """
    location = parse(where)
    if location.backend == "postgresql":
        _postgres()
        from mschat.store.postgres import inspect as postgres

        return postgres.inspect(location.target)
    from mschat.store.sqlite import inspect as sqlite

    return sqlite.inspect(location.target)


def _postgres() -> ModuleType:
    """The PostgreSQL backend's package, or one line saying how to install its driver."""
    try:
        import mschat.store.postgres as backend
    except ImportError as exc:
        raise DatabaseError(
            f"PostgreSQL needs its driver ({exc.name} is missing): pip install 'mschat[postgres]'"
        ) from None
    return backend
