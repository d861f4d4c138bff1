"""The SQLite backend: the store, its migrations and its search."""

from mschat.store.sqlite.store import SCHEMA_VERSION, SQLiteStore

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]
