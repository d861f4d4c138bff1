"""The store: one contract (``Store``), a SQLite and a PostgreSQL backend.

:func:`open_store` picks the backend from a path or URL. Nothing here imports a
backend before it is needed: a cold ``mschat ask`` on SQLite imports no
PostgreSQL driver.
"""

from __future__ import annotations

from pathlib import Path

from mschat.core.errors import DatabaseError
from mschat.store.contract import Store
from mschat.store.location import parse

__all__ = ["Store", "open_store"]


def open_store(where: str | Path) -> Store:
    """Open the database at a path, ``sqlite:///path`` or ``postgresql://…``, migrating it.

    Any other URL scheme is one ``ConfigError`` line.
    """
    location = parse(where)
    if location.backend == "postgresql":
        try:
            from mschat.store.postgres import PostgresStore
        except ImportError as exc:
            raise DatabaseError(
                f"PostgreSQL needs its driver ({exc.name} is missing): "
                "pip install 'mschat[postgres]'"
            ) from None
        return PostgresStore.open(location.target)
    from mschat.store.sqlite import SQLiteStore

    return SQLiteStore.open(location.target)
