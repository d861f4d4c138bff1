"""The PostgreSQL backend (psycopg 3): the store, its migrations and its search."""

from mschat.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
