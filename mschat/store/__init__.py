"""The SQLite store: schema, migrations and the repository class."""

from mschat.store.store import Store, connect

__all__ = ["Store", "connect"]
