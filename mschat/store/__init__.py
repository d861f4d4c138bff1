"""The SQLite store: schema, migrations and the repository class."""

from mschat.store.store import Store

__all__ = ["Store"]
