"""The PostgreSQL store: the same contract as SQLite's, for many instances on one server.

Why psycopg 3 (with ``psycopg_pool``) rather than asyncpg: the store contract
is synchronous, and the manager runs it on worker threads so that no event
loop ever waits for the database; asyncpg would need an event loop of its own
per thread, or a second, asynchronous contract for the same rules. psycopg 3
is PostgreSQL's maintained DB-API driver, its pool hands one connection to
each worker thread, and its binary wheel needs no compiler.

Connections: a pool of :attr:`PostgresStore.threads` (plus two for the event
loop's synchronous calls: a cancelled reply marks itself interrupted). A
:meth:`~PostgresStore.write` block holds one pooled connection for the thread
that entered it, and every store call of that thread inside the block runs on
it, in its transaction. Outside a block each call borrows a connection in
autocommit mode: a single statement is its own transaction. Every use of a
pooled connection goes through ``_connection()`` or ``write()``: once its
commit is over they have the change notices its triggers raised sent
(``changes.py``); a connection used otherwise would leave live views behind.

Outages: a pooled connection the server hung up on (it restarted) is never
handed out, and once a call finds the server gone, each next call first tries
one direct connection, refusing at once (:class:`DatabaseUnavailable`) until the
server is back, when the pool replaces the connections that died. A question is
stored in one transaction with its reply row, so an outage never leaves half of it.

Every lease (session turns, reply writers, idempotency keys) is one atomic
``UPDATE … WHERE`` or ``INSERT … ON CONFLICT``: under read committed, a second
writer waits for the first and re-checks the condition on the row it left.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from mschat.core.errors import DatabaseError, DatabaseUnavailable, NotFound
from mschat.core.models import AttachmentInfo, Message, SearchHit, Session, User, utcnow
from mschat.redact import redact_text
from mschat.store import records
from mschat.store.contract import (
    HELD_FOR_A_BOT,
    LIST_FEEDBACK,
    LOG_TABLES,
    PRUNED_LOGS,
    SURFACE_GONE,
    SURFACES_TO_CLAIM,
    TABLES,
    TOOL_CALL_COLUMNS,
    ChangeFeed,
    QueuePlace,
    QueueStatus,
    ReplySurface,
    SearchOrder,
    SettingRow,
    Store,
    ToolCallRecord,
    UsageTotal,
    UserAsks,
    checked_columns,
    checked_table,
    listed_hashes,
    log_query,
    queue_places,
    queue_places_query,
    queue_status,
    usage_query,
    usage_rows,
)
from mschat.store.postgres import changes, migrations
from mschat.store.postgres.search import RECENT, SearchQuery
from mschat.store.schema import OutdatedSchema
from mschat.store.terms import search_terms

#: worker threads the manager may run store calls on at once: a call mostly waits
#: for the server (round trips, the WAL flush at commit), so more threads than
#: cores keep it busy (on 2 cores, /chat answered about a quarter more with 8
#: than with 4, and no more with 16: ``bench/scale.py``)
THREADS = 8
#: seconds to wait for the server when connecting (and for a free pooled connection)
CONNECT_TIMEOUT = 10
MIGRATION_SET = "mschat"
#: the advisory lock two processes migrating one database take turns on ("msch")
MIGRATION_LOCK = 0x6D736368
#: every connection: times in UTC (read back as ISO text), no NOTICE chatter
OPTIONS = "-c TimeZone=UTC -c client_min_messages=warning"
#: the ``application_name`` of a change feed's LISTEN connection (in ``pg_stat_activity``)
LISTEN_NAME = "mschat-listen"
#: and of the connection that sends a store's change notices
ANNOUNCE_NAME = "mschat-announce"

_LEFT_ALONE = "it was left unchanged"
#: SQLSTATEs of a server going away or not there yet: shut down (by its
#: administrator, after a crash), not accepting connections now, too many clients
_AWAY = frozenset({"57P01", "57P02", "57P03", "53300"})

_SESSION_SELECT = (
    "SELECT "
    + ", ".join(f"s.{c}" for c in records.SESSION_COLUMNS)
    + ", u.name AS creator_name FROM sessions s JOIN users u ON u.id = s.creator_id"
)
_MESSAGE_SELECT = (
    "SELECT "
    + ", ".join(f"m.{c}" for c in records.MESSAGE_COLUMNS)
    + ", a.name AS author_name FROM messages m LEFT JOIN users a ON a.id = m.author_id"
)
_USER_SELECT = f"SELECT {', '.join(records.USER_COLUMNS)} FROM users"
_BOOLEANS = frozenset(records.USER_BOOLEANS + records.SESSION_BOOLEANS)
_KEY_COLUMNS = (
    "id, user_id, key, endpoint, request_hash, state, owner, lease_until, "
    "session_id, message_id, status_code, response, created"
)


#: the next entry a provider's free slot takes (see ``Store.claim_queue``)
NEXT_QUEUED = (
    "SELECT q.id FROM queue q WHERE q.state = 'waiting' AND q.provider = %s "
    "AND NOT EXISTS (SELECT 1 FROM queue r WHERE r.user_id = q.user_id "
    "AND (r.state = 'running' OR r.id < q.id)) "
    "ORDER BY q.priority DESC, q.id LIMIT 1 "
    "FOR UPDATE OF q SKIP LOCKED"
)

#: the advisory lock that serialises claims of queue entries
QUEUE_LOCK = 0x6D73_7175  # "msqu"


def _first(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of a statement's one row."""
    row = cursor.fetchone()
    assert row is not None
    return row[0]


class IsoTimestampLoader(Loader):
    """``timestamptz`` as ``utcnow()``'s ISO-8601 text (the session's time zone is UTC)."""

    def load(self, data: Any) -> str:
        """'2025-01-02 03:04:05.5+00' → '2025-01-02T03:04:05.500000+00:00'."""
        text = bytes(data).decode()
        if 22 <= len(text) <= 29 and text[10] == " " and text.endswith("+00"):
            # the usual shape, cut without searching (every row of a history page has some)
            clock = text[11:-3]
            clock = clock.ljust(15, "0") if len(clock) > 8 else f"{clock}.000000"
            return f"{text[:10]}T{clock}+00:00"
        day, _, clock = text.partition(" ")
        clock = clock[: clock.rindex("+")] if "+" in clock else clock
        seconds, _, fraction = clock.partition(".")
        return f"{day}T{seconds}.{fraction.ljust(6, '0')}+00:00"


def identity(conn: psycopg.Connection[Any]) -> str:
    """``postgresql://user@host:port/dbname`` of a connection: where it is, without secrets."""
    info = conn.info
    return "postgresql://{}@{}:{}/{}".format(
        quote(info.user, safe=""), quote(info.host, safe="/"), info.port, info.dbname
    )


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("timestamptz", IsoTimestampLoader)
    changes.collect_notices(conn)


def _values(values: dict[str, Any]) -> dict[str, Any]:
    """Flags given as 0/1 (the core's, SQLite's) as booleans."""
    return {
        key: bool(value) if key in _BOOLEANS and value is not None else value
        for key, value in values.items()
    }


class PostgresStore(Store):
    """Repository over a pool of connections to one PostgreSQL database; thread-safe."""

    backend = "postgresql"

    def __init__(self, url: str, *, threads: int = THREADS, upgrade: bool = True) -> None:
        self._secret_url = url
        self._threads = threads
        self._held = threading.local()
        self._columns: dict[str, str] = {}
        #: a call found the server gone: the next ones try a direct connection first
        self._down = False
        self._reconnecting = threading.Lock()
        _quiet_pool_log()
        first = self._connect()
        try:
            self._identity = identity(first)
            self._check_and_migrate(first, upgrade=upgrade)
        finally:
            first.close()
        #: this store's mark on the change notices its writes cause (m008_change_notices)
        self.origin = secrets.token_hex(8)
        self._announcer: changes.Announcer | None = None  # made by the first change
        self._announcer_lock = threading.Lock()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=threads + 2,
            kwargs={"autocommit": True, "options": f"{OPTIONS} -c mschat.origin={self.origin}"},
            configure=_configure,
            timeout=CONNECT_TIMEOUT,
            # no reconnecting in the background (its back-off would delay the first
            # call after an outage): a call that needs a connection makes one
            reconnect_timeout=0,
            name="mschat",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except PoolTimeout as exc:
            raise DatabaseError(f"cannot connect to database {self.url}: timed out") from exc

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> PostgresStore:
        """Connect to the database at ``url``, migrating it to the current schema.

        ``upgrade=False``: an older schema is refused (``OutdatedSchema``) instead;
        a blank database is still made an mschat database.
        """
        return cls(url, upgrade=upgrade)

    @property
    def url(self) -> str:
        """``postgresql://user@host:port/dbname``: where the store is, without secrets."""
        return self._identity

    @property
    def threads(self) -> int:
        """The pool's worker connections."""
        return self._threads

    def close(self) -> None:
        """Send the last change notices; close every connection."""
        if self._announcer is not None:
            self._announcer.close()
        self._pool.close()

    # ---- connections and errors ---------------------------------------------

    def _shown(self) -> str:
        return getattr(self, "_identity", None) or redact_text(self._secret_url)

    def _error(self, exc: psycopg.Error, doing: str = "use") -> DatabaseError:
        """One line, without the URL's password, naming the database."""
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return DatabaseError(f"cannot write database {self._shown()}: it is read-only")
        password = urlsplit(self._secret_url).password
        if _away(exc):
            self._down = True
            reason = redact_text(_short_reason(exc), [password])
            return DatabaseUnavailable(
                f"cannot {doing} database {self._shown()}: it is unreachable ({reason}); "
                "try again shortly"
            )
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return DatabaseError(
            f"cannot {doing} database {self._shown()}: {redact_text(reason, [password])}"
        )

    def _connect(self) -> psycopg.Connection[Any]:
        """One connection outside the pool (to check and migrate before the pool opens)."""
        try:
            conn = psycopg.connect(
                self._secret_url,
                autocommit=True,
                options=OPTIONS,
                connect_timeout=CONNECT_TIMEOUT,
            )
        except psycopg.Error as exc:
            raise self._error(exc, "connect to") from None
        _configure(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection in a write block, else one borrowed for one call."""
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self._borrow() as conn:
                try:
                    yield conn
                finally:
                    self._announce(conn)  # committed (or failed: a needless notice)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    @contextmanager
    def _borrow(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection to a server that is there; never one it hung up on."""
        if self._down:
            self._reconnect()
        conn = self._pool.getconn()
        if _hung_up(conn):
            self._pool.putconn(conn)  # closed: the pool forgets it
            self._down = True  # the other idle ones are gone too
            self._reconnect()
            conn = self._pool.getconn()
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def _reconnect(self) -> None:
        """After an outage, one direct connection says whether the server is back:
        refused at once while it is not; once it is, the pool replaces what died."""
        with self._reconnecting:
            if not self._down:
                return  # another thread has just reconnected
            self._connect().close()
            self._pool.check()  # every idle connection is checked, dead ones replaced
            self._down = False

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on one pooled connection for this thread; nested blocks join it."""
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self._borrow() as conn:
                try:
                    with conn.transaction():
                        self._held.conn = conn
                        try:
                            yield conn
                        finally:
                            self._held.conn = None
                except BaseException:
                    changes.forget(conn)
                    raise
                self._announce(conn)  # after the commit: see changes.py
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        with self._connection() as conn:
            try:
                cursor = conn.execute(sql, params)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise self._error(exc) from None
            return _names(cursor), cursor.fetchall()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        with self._connection() as conn:
            try:
                return conn.execute(sql, params)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise self._error(exc) from None

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        values = _values(values)
        columns = ", ".join(values)
        marks = ", ".join("%s" for _ in values)
        cursor = self._execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id",
            list(values.values()),
        )
        return _new_id(cursor)

    def _update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        if not values:
            return
        values = _values(values)
        assignments = ", ".join(f"{key} = %s" for key in values)
        self._execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*values.values(), row_id])

    # ---- schema -------------------------------------------------------------

    def _check_and_migrate(self, conn: psycopg.Connection[Any], *, upgrade: bool = True) -> None:
        """Refuse, before any write, another application's or a newer mschat's database;
        then apply the pending migrations in one transaction under an advisory lock.

        Without ``upgrade``, only a blank database is migrated; an older one is refused.
        """
        try:
            pending = self._pending(conn)
            if not pending:
                return  # the fast path: current
            if not upgrade and len(pending) < len(migrations.MIGRATIONS):
                raise OutdatedSchema(self.url, [name for name, _ in pending])
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
                pending = self._pending(conn)  # another process may have migrated meanwhile
                if not pending:
                    return
                if not upgrade and len(pending) < len(migrations.MIGRATIONS):
                    raise OutdatedSchema(self.url, [name for name, _ in pending])
                conn.execute(migrations.MIGRATIONS_TABLE)
                for name, migrate in pending:
                    migrate(conn)
                    conn.execute(
                        "INSERT INTO _mschat_migrations (migration_set, name) VALUES (%s, %s)",
                        [MIGRATION_SET, name],
                    )
        except psycopg.Error as exc:
            raise self._error(exc, "upgrade") from None

    def _pending(self, conn: psycopg.Connection[Any]) -> list[tuple[str, Any]]:
        """The migrations this database lacks; refuses one mschat must not touch."""
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        ]
        if "_mschat_migrations" not in tables:
            if tables:
                listed = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
                raise DatabaseError(
                    f"database {self._shown()} holds another application's tables, not "
                    f"mschat's ({listed}); give mschat another database — {_LEFT_ALONE}"
                )
            return list(migrations.MIGRATIONS)
        applied = self._applied(conn)
        unknown = [name for name in applied if name not in migrations.KNOWN_MIGRATIONS]
        if unknown:
            raise DatabaseError(
                f"database {self._shown()} was written by a newer mschat (unknown migrations: "
                f"{', '.join(unknown)}); upgrade mschat to use it — {_LEFT_ALONE}"
            )
        return [(name, fn) for name, fn in migrations.MIGRATIONS if name not in applied]

    @staticmethod
    def _applied(conn: psycopg.Connection[Any]) -> list[str]:
        return [
            row[0]
            for row in conn.execute(
                "SELECT name FROM _mschat_migrations WHERE migration_set = %s ORDER BY id",
                [MIGRATION_SET],
            )
        ]

    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in this database, in order."""
        with self._connection() as conn:
            return self._applied(conn)

    def data_version(self) -> int:
        """The ``mschat_changes`` sequence: every write to users, sessions, messages moves it."""
        _, found = self._query("SELECT last_value + is_called::int FROM mschat_changes")
        return int(found[0][0])

    def read_rows(
        self, table: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Rows of one of ``TABLES`` with an id above ``after_id``, in id order."""
        if table not in TABLES:
            raise ValueError(f"not an mschat table: {table!r}")
        names, found = self._query(
            f"SELECT {self._stored_columns(table)} FROM {table} WHERE id > %s ORDER BY id LIMIT %s",
            [after_id, limit],
        )
        flags = [name for name in names if name in _BOOLEANS]
        result = [dict(zip(names, row, strict=True)) for row in found]
        for data in result:
            for name in flags:
                if data[name] is not None:
                    data[name] = int(data[name])
        return result

    def table_counts(self) -> dict[str, int]:
        """Row counts of the main tables (diagnostics, tests)."""
        tables = ["users", "sessions", "messages", "api_calls", "feedback", "interactions"]
        _, found = self._query("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables))
        return dict(zip(tables, found[0], strict=True))

    # ---- users --------------------------------------------------------------

    def get_user(self, user_id: int) -> User:
        """The user with this id, or NotFound."""
        names, found = self._query(f"{_USER_SELECT} WHERE id = %s", [user_id])
        if not found:
            raise NotFound(f"no user with id {user_id}", hint="list users with `mschat users list`")
        return records.user(found[0], names)

    def find_user(self, kind: str, external_id: str) -> User | None:
        """The user of this kind and external id, if any."""
        names, found = self._query(
            f"{_USER_SELECT} WHERE kind = %s AND external_id = %s", [kind, external_id]
        )
        return records.user(found[0], names) if found else None

    def create_user(self, **values: Any) -> User:
        """Insert a user unless one of this (kind, external_id) exists; return the user."""
        now = utcnow()
        values = _values({"created": now, "updated": now, "modified": now, **values})
        columns = ", ".join(values)
        marks = ", ".join("%s" for _ in values)
        with self.write():
            self._execute(
                f"INSERT INTO users ({columns}) VALUES ({marks}) "
                "ON CONFLICT (kind, external_id) DO NOTHING",
                list(values.values()),
            )
            user = self.find_user(values["kind"], values["external_id"])
        assert user is not None
        return user

    def update_user(self, user_id: int, **values: Any) -> User:
        """Change a user's fields and return the user."""
        with self.write():
            self._update("users", user_id, values)
            return self.get_user(user_id)

    def list_users(self, kind: str | None = None, limit: int = 1000, offset: int = 0) -> list[User]:
        """Users, most recently active first."""
        where, params = ("WHERE kind = %s", [kind]) if kind else ("", [])
        names, found = self._query(
            f"{_USER_SELECT} {where} ORDER BY updated DESC, id DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return [records.user(row, names) for row in found]

    def find_users(self, text: str) -> list[User]:
        """Users whose name or external id equals ``text`` (or whose id does)."""
        names, found = self._query(
            f"{_USER_SELECT} WHERE name = %s OR external_id = %s OR id::text = %s ORDER BY id",
            [text, text, text],
        )
        return [records.user(row, names) for row in found]

    # ---- sessions -----------------------------------------------------------

    def create_session(self, **values: Any) -> Session:
        """Insert a session and return it."""
        now = utcnow()
        values = {"created": now, "updated": now, "modified": now, **values}
        with self.write():
            return self.get_session(self._insert("sessions", values))

    def get_session(self, session_id: int) -> Session:
        """The session with this id, or NotFound."""
        names, found = self._query(f"{_SESSION_SELECT} WHERE s.id = %s", [session_id])
        if not found:
            raise NotFound(
                f"no session {session_id}", hint="list sessions with `mschat sessions list`"
            )
        return records.session(found[0], names)

    def update_session(self, session_id: int, **values: Any) -> Session:
        """Change a session's fields and return it."""
        with self.write():
            self._update("sessions", session_id, values)
            return self.get_session(session_id)

    def touch_session(self, session_id: int) -> None:
        """Bump a session's ``updated`` time (a dialogue happened)."""
        self._update("sessions", session_id, {"updated": utcnow()})

    def retitle_untouched_session(self, session_id: int, default: str, title: str) -> bool:
        """Give a session still titled ``default`` and without messages a title."""
        cursor = self._execute(
            "UPDATE sessions SET title = %s WHERE id = %s AND title = %s AND message_count = 0",
            [title, session_id, default],
        )
        return cursor.rowcount == 1

    def take_lease(self, session_id: int, owner: str, now: str, until: str) -> bool:
        """Take (or renew) a session's lease unless another owner holds a live one."""
        cursor = self._execute(
            "UPDATE sessions SET lease_owner = %s, lease_until = %s WHERE id = %s AND "
            "(lease_owner IS NULL OR lease_owner = %s OR lease_until < %s)",
            [owner, until, session_id, owner, now],
        )
        return cursor.rowcount == 1

    def release_lease(self, session_id: int, owner: str) -> None:
        """Give a session's lease back (if this owner still holds it)."""
        self._execute(
            "UPDATE sessions SET lease_owner = NULL, lease_until = NULL "
            "WHERE id = %s AND lease_owner = %s",
            [session_id, owner],
        )

    def delete_session(self, session_id: int) -> None:
        """Delete a session and (by cascade) its messages."""
        with self.write():
            listed = self._listed("session_id = %s", [session_id])
            self._execute("DELETE FROM sessions WHERE id = %s", [session_id])
            self._drop_unused(listed)

    def delete_user_sessions(self, user_id: int) -> int:
        """Delete every session a user created; returns how many."""
        with self.write():
            listed = self._listed(
                "session_id IN (SELECT id FROM sessions WHERE creator_id = %s)", [user_id]
            )
            deleted = self._execute(
                "DELETE FROM sessions WHERE creator_id = %s", [user_id]
            ).rowcount
            self._drop_unused(listed)
            return deleted

    def _listed(self, where: str, params: list[Any]) -> set[str]:
        """The files the messages about to be deleted list."""
        _, rows = self._query(
            f"SELECT attachments FROM messages WHERE attachments IS NOT NULL AND {where}", params
        )
        return listed_hashes(rows)

    def _drop_unused(self, hashes: set[str]) -> None:
        """Delete the stored contents no message lists any more (of those just unlisted)."""
        for sha256 in hashes:
            self._execute(
                "DELETE FROM attachments WHERE sha256 = %s AND NOT EXISTS (SELECT 1 FROM "
                "messages WHERE attachments IS NOT NULL AND strpos(attachments, %s) > 0)",
                [sha256, sha256],
            )

    def save_attachment(self, info: AttachmentInfo, data: bytes) -> None:
        """Store a file's content under its SHA-256, unless it is stored already."""
        self._execute(
            "INSERT INTO attachments (sha256, mime, size, data, created) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
            [info.sha256, info.mime, len(data), data, utcnow()],
        )

    def attachment_data(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """The stored contents of these files, by SHA-256 (unknown ones left out)."""
        wanted = list(dict.fromkeys(sha256s))
        if not wanted:
            return {}
        _, rows = self._query(
            "SELECT sha256, data FROM attachments WHERE sha256 = ANY(%s)", [wanted]
        )
        return {sha256: bytes(data) for sha256, data in rows}

    def list_sessions(
        self,
        user_id: int | None,
        *,
        include_public: bool = False,
        include_hidden: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Session]:
        """Sessions visible to a user (own, plus others' public), most recent first."""
        clauses, params = _visibility(user_id, include_public)
        if not include_hidden:
            clauses.append("NOT s.hidden")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        names, found = self._query(
            f"{_SESSION_SELECT} {where} ORDER BY s.updated DESC, s.id DESC LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return [records.session(row, names) for row in found]

    def count_sessions(self, user_id: int | None, *, include_public: bool = False) -> int:
        """How many sessions ``list_sessions`` would page through."""
        clauses, params = _visibility(user_id, include_public)
        clauses.append("NOT s.hidden")
        _, found = self._query(
            f"SELECT count(*) FROM sessions s WHERE {' AND '.join(clauses)}", params
        )
        return int(found[0][0])

    def find_sessions_by_title(self, title: str) -> list[Session]:
        """Sessions whose title equals ``title`` (case-insensitive), newest first."""
        names, found = self._query(
            f"{_SESSION_SELECT} WHERE lower(s.title) = lower(%s) ORDER BY s.updated DESC",
            [title],
        )
        return [records.session(row, names) for row in found]

    def last_session_of(self, user_id: int) -> Session | None:
        """The session where the user spoke most recently, if any."""
        names, found = self._query(
            f"{_SESSION_SELECT} WHERE s.id = (SELECT session_id FROM messages "
            "WHERE author_id = %s ORDER BY id DESC LIMIT 1)",
            [user_id],
        )
        if found:
            return records.session(found[0], names)
        sessions = self.list_sessions(user_id, limit=1)
        return sessions[0] if sessions else None

    # ---- messages -----------------------------------------------------------

    def add_message(self, *, touch_session: bool = True, **values: Any) -> Message:
        """Insert a message; bumps the session's and author's ``updated`` time."""
        now = values.setdefault("created", utcnow())
        inserted = _values(records.message_values(values))
        columns = ", ".join(inserted)
        marks = ", ".join("%s" for _ in inserted)
        # one statement, so one round trip and its own transaction: the updates
        # ride along as data-modifying CTEs, which always run to completion
        sql = f"WITH m AS (INSERT INTO messages ({columns}) VALUES ({marks}) RETURNING id)"
        params = list(inserted.values())
        if touch_session:
            sql += ", s AS (UPDATE sessions SET updated = %s WHERE id = %s)"
            params += [now, values["session_id"]]
        if values.get("author_id") is not None:
            sql += ", u AS (UPDATE users SET updated = %s WHERE id = %s)"
            params += [now, values["author_id"]]
        message_id = _new_id(self._execute(f"{sql} SELECT id FROM m", params))
        # built from what was inserted, as on SQLite
        if "attachments" in values:
            values["attachments"] = records.attachments_of(values["attachments"])
        return Message(id=message_id, author_id=values.pop("author_id", None), **values)

    def insert_messages(
        self, session_id: int, rows: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> int:
        """Copy messages (fork, import) into a session in one transaction; returns how many."""
        copied = [c for c in _COPIED if c != "external_ref"]
        sql = (
            f"INSERT INTO messages (session_id, {', '.join(copied)}) "
            f"VALUES (%s, {', '.join('%s' for _ in copied)}) RETURNING id"
        )
        now = utcnow()
        values = [
            [session_id] + [records.copied_value(row, c, now) for c in copied] for row in rows
        ]
        if not values:
            return 0
        with self.write() as conn:
            try:
                first = conn.execute(sql, values[0]).fetchone()  # type: ignore[arg-type]
                if len(values) > 1:
                    conn.cursor().executemany(sql.removesuffix(" RETURNING id"), values[1:])  # type: ignore[arg-type]
                if ref is not None and first is not None:
                    conn.execute(
                        "UPDATE messages SET external_ref = %s WHERE id = %s", [ref, first[0]]
                    )
            except psycopg.Error as exc:
                raise self._error(exc) from None
        return len(values)

    def has_message_ref(self, external_ref: str, creator_id: int) -> bool:
        """Whether a session of ``creator_id`` holds a message with this reference."""
        _, found = self._query(
            "SELECT 1 FROM messages m JOIN sessions s ON s.id = m.session_id "
            "WHERE m.external_ref = %s AND s.creator_id = %s LIMIT 1",
            [external_ref, creator_id],
        )
        return bool(found)

    def get_message(self, message_id: int) -> Message:
        """The message with this id, or NotFound."""
        names, found = self._query(f"{_MESSAGE_SELECT} WHERE m.id = %s", [message_id])
        if not found:
            raise NotFound(f"no message {message_id}")
        return records.message(found[0], names)

    def update_message(self, message_id: int, **values: Any) -> None:
        """Change a message's fields (content while streaming, final status...)."""
        self._update("messages", message_id, values)

    def find_message_by_ref(self, external_ref: str) -> Message | None:
        """The message carrying this external reference (e.g. a Discord message id)."""
        names, found = self._query(
            f"{_MESSAGE_SELECT} WHERE m.external_ref = %s ORDER BY m.id DESC LIMIT 1",
            [external_ref],
        )
        return records.message(found[0], names) if found else None

    def delete_messages_from(self, session_id: int, message_id: int) -> int:
        """Delete a session's messages from ``message_id`` on; returns how many."""
        where = "session_id = %s AND id >= %s"
        with self.write():
            listed = self._listed(where, [session_id, message_id])
            deleted = self._execute(
                f"DELETE FROM messages WHERE {where}", [session_id, message_id]
            ).rowcount
            self._drop_unused(listed)
            return deleted

    def messages(
        self,
        session_id: int,
        *,
        limit: int | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[Message]:
        """A session's messages in order; ``limit`` keeps the last ones (paging back)."""
        clauses, params = ["m.session_id = %s"], [session_id]
        if before_id is not None:
            clauses.append("m.id < %s")
            params.append(before_id)
        if after_id is not None:
            clauses.append("m.id > %s")
            params.append(after_id)
        where = " AND ".join(clauses)
        if limit is None:
            names, found = self._query(f"{_MESSAGE_SELECT} WHERE {where} ORDER BY m.id", params)
            return [records.message(row, names) for row in found]
        names, found = self._query(
            f"{_MESSAGE_SELECT} WHERE {where} ORDER BY m.id DESC LIMIT %s", [*params, limit]
        )
        return [records.message(row, names) for row in reversed(found)]

    def messages_changed_since(self, session_id: int, after_id: int) -> list[Message]:
        """Messages newer than ``after_id`` plus any still streaming (live views)."""
        names, found = self._query(
            f"{_MESSAGE_SELECT} WHERE m.session_id = %s "
            "AND (m.id > %s OR m.status = 'streaming') ORDER BY m.id",
            [session_id, after_id],
        )
        return [records.message(row, names) for row in found]

    def search(
        self,
        text: str,
        *,
        user_id: int | None,
        include_public: bool = True,
        limit: int = 20,
        offset: int = 0,
        order: SearchOrder = "newest",
    ) -> list[SearchHit]:
        """Messages visible to a user that contain every term of ``text`` (tsvector + GIN)."""
        query = SearchQuery.of(search_terms(text))
        if query is None:
            return []
        clauses, params = _visibility(user_id, include_public)
        wanted = offset + limit
        found: list[tuple] = []
        below = None
        if order == "newest":
            _, (top,) = self._query("SELECT coalesce(max(id), 0) FROM messages")
            floor = max(int(top[0]) - RECENT, 0)
            sql, values = query.hits_sql(clauses, params, order=order, limit=wanted, above=floor)
            found = self._query(sql, values)[1]
            below = floor + 1 if floor else 0
        if len(found) < wanted and below != 0:
            sql, values = query.hits_sql(
                clauses, params, order=order, limit=wanted - len(found), below=below
            )
            found += self._indexed_query(sql, values)
        found = found[offset:]
        if not found:
            return []
        sql, values = query.windows_sql([row[0] for row in found])
        _, windows = self._query(sql, values)
        snippets = {row[0]: query.snippet(*row[1:]) for row in windows}
        return [
            SearchHit(
                message_id, session_id, title, role, created, *snippets.get(message_id, ("", []))
            )
            for message_id, session_id, title, role, created in found
        ]

    def _indexed_query(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        """Rows of a search through the GIN index, whatever the planner guesses."""
        with self._connection() as conn:
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL enable_indexscan = off")
                    conn.execute("SET LOCAL enable_seqscan = off")
                    found = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
                    conn.execute("SET LOCAL enable_indexscan = on")
                    conn.execute("SET LOCAL enable_seqscan = on")
                    return found
            except psycopg.Error as exc:
                raise self._error(exc) from None

    # ---- replies and their leases -------------------------------------------

    def add_reply(self, session_id: int, model: str, lease_until: str) -> Message:
        """Insert an empty ``streaming`` reply, leased to its writer until ``lease_until``."""
        now = utcnow()
        cursor = self._execute(
            "INSERT INTO messages (session_id, role, content, model, created, status, "
            "lease_until) VALUES (%s, 'assistant', '', %s, %s, 'streaming', %s) RETURNING id",
            [session_id, model, now, lease_until],
        )
        return Message(
            id=_new_id(cursor),
            session_id=session_id,
            author_id=None,
            role="assistant",
            content="",
            created=now,
            status="streaming",
            model=model,
        )

    def add_question(
        self,
        session_id: int,
        author_id: int,
        content: str,
        *,
        model: str,
        lease_until: str,
        external_ref: str | None = None,
        attachments: Sequence[tuple[AttachmentInfo, bytes]] = (),
    ) -> tuple[Message, Message]:
        """A question and its empty reply in one statement (one round trip, one transaction).

        One multi-row INSERT: its rows take their ids in the order listed, so the
        reply's id follows the question's, as when inserted one after the other.
        Files come first, in the same transaction.
        """
        now = utcnow()
        infos = tuple(info for info, _ in attachments)
        with self.write() if attachments else contextlib.nullcontext():
            for info, data in attachments:
                self.save_attachment(info, data)
            cursor = self._execute(
                "WITH m AS (INSERT INTO messages (session_id, author_id, role, content, "
                "external_ref, attachments, created, model, status, lease_until) VALUES "
                "(%s, %s, 'user', %s, %s, %s, %s, DEFAULT, DEFAULT, DEFAULT), "
                "(%s, NULL, 'assistant', '', NULL, NULL, %s, %s, 'streaming', %s) RETURNING id), "
                "s AS (UPDATE sessions SET updated = %s WHERE id = %s), "
                "u AS (UPDATE users SET updated = %s WHERE id = %s) "
                "SELECT id FROM m ORDER BY id",
                [
                    *(session_id, author_id, content, external_ref),
                    *(records.attachments_json(infos), now),
                    *(session_id, now, model, lease_until),
                    *(now, session_id, now, author_id),
                ],
            )
            question_id, reply_id = (row[0] for row in cursor.fetchall())
        asked = Message(
            id=question_id,
            session_id=session_id,
            author_id=author_id,
            role="user",
            content=content,
            created=now,
            external_ref=external_ref,
            attachments=infos,
        )
        reply = Message(
            id=reply_id,
            session_id=session_id,
            author_id=None,
            role="assistant",
            content="",
            created=now,
            status="streaming",
            model=model,
        )
        return asked, reply

    def renew_reply_lease(self, message_id: int, lease_until: str) -> None:
        """Push a streaming reply's lease forward (its writer is alive)."""
        self._execute(
            "UPDATE messages SET lease_until = %s WHERE id = %s AND status = 'streaming'",
            [lease_until, message_id],
        )

    def save_reply_surface(
        self, reply_id: int, kind: str, usable_until: str, **values: Any
    ) -> None:
        """Remember where a streaming reply shows, replacing what was saved."""
        row = {"reply_id": reply_id, "kind": kind, "usable_until": usable_until, **values}
        row["created"] = utcnow()
        names = checked_columns(row)
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names[1:])
        self._execute(
            f"INSERT INTO reply_surfaces ({', '.join(names)}) "
            f"VALUES ({', '.join('%s' for _ in row)}) "
            f"ON CONFLICT (reply_id) DO UPDATE SET {updates}",
            list(row.values()),
        )

    def drop_reply_surface(self, reply_id: int) -> None:
        """Forget where a reply shows."""
        self._execute("DELETE FROM reply_surfaces WHERE reply_id = %s", [reply_id])

    def claim_reply_surfaces(self, now: str, lease_until: str) -> list[ReplySurface]:
        """Claim the surfaces of replies whose writer is gone, each for one caller only.

        Rows another process holds locked are skipped (``SKIP LOCKED``); the
        conditional updates make a claim one caller's even without the locks.
        """
        if not self._query(SURFACES_TO_CLAIM, [now])[1]:
            return []  # the usual case: a read, no write lock every few seconds
        claimed: list[ReplySurface] = []
        with self.write() as conn:
            rows = conn.execute(SURFACES_TO_CLAIM + " FOR UPDATE OF s SKIP LOCKED", [now])
            for row in rows.fetchall():
                surface = ReplySurface._make([*row[:8], False])
                if surface.status == "streaming" and surface.usable_until > now:
                    won = conn.execute(
                        "UPDATE messages SET lease_until = %s WHERE id = %s "
                        "AND status = 'streaming' AND lease_until < %s",
                        [lease_until, surface.reply_id, now],
                    ).rowcount
                    if won:
                        claimed.append(surface._replace(resume=True))
                    continue
                won = conn.execute(
                    "DELETE FROM reply_surfaces WHERE reply_id = %s", [surface.reply_id]
                ).rowcount
                if won and surface.status == "streaming":
                    conn.execute(
                        "UPDATE messages SET status = 'interrupted', error = %s, "
                        "lease_until = NULL WHERE id = %s",
                        [SURFACE_GONE, surface.reply_id],
                    )
                    surface = surface._replace(status="interrupted")
                if won:
                    claimed.append(surface)
        return claimed

    def interrupt_stale_replies(self, now: str, legacy_before: str, reason: str) -> int:
        """Mark replies still ``streaming`` whose writer is gone as interrupted (one UPDATE)."""
        return self._execute(
            "UPDATE messages SET status = 'interrupted', error = %s, lease_until = NULL "
            "WHERE status = 'streaming' "
            "AND (lease_until < %s OR (lease_until IS NULL AND created < %s)) "
            f"AND {HELD_FOR_A_BOT}",
            [reason, now, legacy_before, now],
        ).rowcount

    # ---- operations logs ----------------------------------------------------

    def add_api_call(self, **values: Any) -> int:
        """Record one provider request."""
        values.setdefault("started", utcnow())
        return self._insert("api_calls", values)

    def finish_reply(
        self, reply_id: int, session_id: int, values: dict[str, Any], call: dict[str, Any]
    ) -> None:
        """A reply's final writes in one statement, so one round trip and one transaction:
        the api_calls row and the session's time ride along as data-modifying CTEs."""
        changed = _values({**values, "lease_until": None})
        logged = _values({"started": utcnow(), **call})
        assignments = ", ".join(f"{key} = %s" for key in changed)
        self._execute(
            f"WITH m AS (UPDATE messages SET {assignments} WHERE id = %s), "
            f"c AS (INSERT INTO api_calls ({', '.join(logged)}) "
            f"VALUES ({', '.join('%s' for _ in logged)})) "
            "UPDATE sessions SET updated = %s WHERE id = %s",
            [*changed.values(), reply_id, *logged.values(), utcnow(), session_id],
        )

    # ---- live settings (mschat config set) ------------------------------------

    # ---- the queue of questions ------------------------------------------------

    def enqueue(
        self, user_id: int, provider: str, priority: int, now: str, until: str, size: int | None
    ) -> int | None:
        """Put a question in the queue unless ``size`` entries already wait."""
        with self.write() as conn:
            # the count and the insert hold for the whole deployment (see claim_queue)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [QUEUE_LOCK])
            conn.execute("DELETE FROM queue WHERE lease_until < %s", [now])
            if size is not None:
                waiting = _first(conn.execute("SELECT count(*) FROM queue WHERE state = 'waiting'"))
                if waiting >= size:
                    return None
            return int(
                _first(
                    conn.execute(
                        "INSERT INTO queue (user_id, provider, priority, created, lease_until) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                        [user_id, provider, priority, now, until],
                    )
                )
            )

    def claim_queue(
        self, provider: str, max_running: int | None, now: str, until: str
    ) -> list[int]:
        """Start the next waiting entries of a provider (one claimer at a time: advisory lock)."""
        claimed: list[int] = []
        with self.write() as conn:
            # one claimer at a time in the whole deployment: the slot count holds
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [QUEUE_LOCK])
            conn.execute("DELETE FROM queue WHERE lease_until < %s", [now])
            running = _first(
                conn.execute(
                    "SELECT count(*) FROM queue WHERE state = 'running' AND provider = %s",
                    [provider],
                )
            )
            while max_running is None or running < max_running:
                row = conn.execute(NEXT_QUEUED, [provider]).fetchone()
                if row is None:
                    break
                conn.execute(
                    "UPDATE queue SET state = 'running', lease_until = %s WHERE id = %s",
                    [until, row[0]],
                )
                claimed.append(row[0])
                running += 1
        return claimed

    def queue_states(self, entry_ids: Sequence[int]) -> dict[int, str]:
        """The state of those entries still queued."""
        if not entry_ids:
            return {}
        marks = ", ".join("%s" for _ in entry_ids)
        _, rows = self._query(f"SELECT id, state FROM queue WHERE id IN ({marks})", entry_ids)
        return {row[0]: row[1] for row in rows}

    def queue_places(self, entry_ids: Sequence[int], now: str) -> dict[int, QueuePlace]:
        """The state of those entries still queued, and the place of the waiting ones."""
        if not entry_ids:
            return {}
        ids = list(entry_ids)
        _, rows = self._query(queue_places_query(len(entry_ids)), [*ids, now, *ids, *ids])
        return queue_places(rows)

    def renew_queue(self, entry_ids: Sequence[int], until: str) -> None:
        """Extend the leases of entries this process still waits for or runs."""
        if not entry_ids:
            return
        marks = ", ".join("%s" for _ in entry_ids)
        with self.write() as conn:
            conn.execute(
                f"UPDATE queue SET lease_until = %s WHERE id IN ({marks})", [until, *entry_ids]
            )

    def leave_queue(self, entry_id: int) -> None:
        """Remove an entry: its slot is free."""
        with self.write() as conn:
            conn.execute("DELETE FROM queue WHERE id = %s", [entry_id])

    def queue_status(self, now: str) -> QueueStatus:
        """The live entries of the queue."""
        _, rows = self._query(
            "SELECT state, provider, count(*), min(created) FROM queue "
            "WHERE lease_until >= %s GROUP BY state, provider",
            [now],
        )
        return queue_status(rows)

    def settings(self) -> list[SettingRow]:
        """Every setting stored in the database, by key."""
        _, rows = self._query("SELECT key, value, updated, updated_by FROM settings ORDER BY key")
        return [SettingRow(*row) for row in rows]

    def set_setting(
        self, key: str, value: str, updated_by: str | None, updated: str | None = None
    ) -> None:
        """Store a setting's value (JSON text), replacing the one it had."""
        with self.write() as conn:
            try:
                conn.execute(
                    "INSERT INTO settings (key, value, updated, updated_by) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "value = excluded.value, updated = excluded.updated, "
                    "updated_by = excluded.updated_by",
                    [key, value, updated or utcnow(), updated_by],
                )
            except psycopg.Error as exc:
                raise self._error(exc) from None

    def unset_setting(self, key: str) -> bool:
        """Remove a setting from the database; whether it was there."""
        with self.write() as conn:
            try:
                cursor = conn.execute("DELETE FROM settings WHERE key = %s", [key])
            except psycopg.Error as exc:
                raise self._error(exc) from None
            return cursor.rowcount == 1

    def api_calls_for(self, message_id: int) -> list[dict[str, Any]]:
        """The provider requests made for one reply, oldest first."""
        names, found = self._query(
            "SELECT * FROM api_calls WHERE message_id = %s ORDER BY id", [message_id]
        )
        return [dict(zip(names, row, strict=True)) for row in found]

    def usage_totals(
        self,
        *,
        user_id: int | None = None,
        session_id: int | None = None,
        since: str | None = None,
    ) -> list[UsageTotal]:
        """Tokens of the provider requests made since ``since``, per user and model."""
        _, rows = self._query(
            *usage_query("%s", user_id=user_id, session_id=session_id, since=since)
        )
        return usage_rows(rows)

    def add_feedback(self, **values: Any) -> int | None:
        """Record a user's feedback on a reply; its id, or None for a repeated vote."""
        values.setdefault("created", utcnow())
        columns = ", ".join(values)
        marks = ", ".join("%s" for _ in values)
        cursor = self._execute(
            f"INSERT INTO feedback ({columns}) VALUES ({marks})"
            " ON CONFLICT DO NOTHING RETURNING id",
            list(values.values()),
        )
        row = cursor.fetchone()
        return None if row is None else int(row[0])

    def feedback_counts(self, message_id: int) -> dict[str, int]:
        """How many votes each feedback kind has on one reply (kinds without any left out)."""
        _, rows = self._query(
            "SELECT kind, count(*) FROM feedback WHERE message_id = %s GROUP BY kind", [message_id]
        )
        return {str(kind): int(count) for kind, count in rows}

    def list_feedback(self, limit: int = 50) -> list[dict[str, Any]]:
        """Every feedback row on the ``limit`` replies most recently given feedback."""
        names, rows = self._query(LIST_FEEDBACK.format(mark="%s"), [limit])
        return [dict(zip(names, row, strict=True)) for row in rows]

    def list_log(
        self,
        table: str,
        *,
        user_id: int | None = None,
        since: str | None = None,
        limit: int = 50,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest rows of one operations log, each with its user's name."""
        query, params = log_query(
            table, user_id=user_id, since=since, limit=limit, mark="%s", kind=kind
        )
        names, rows = self._query(query, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def prune_logs(self, before: str) -> dict[str, int]:
        """Delete the interactions and API calls recorded before ``before``."""
        counts: dict[str, int] = {}
        with self.write() as conn:
            for table in PRUNED_LOGS:
                cursor = conn.execute(
                    f"DELETE FROM {table} WHERE {LOG_TABLES[table]} < %s", [before]
                )
                counts[table] = max(cursor.rowcount, 0)
        return counts

    def add_interaction(self, **values: Any) -> int:
        """Record an interaction or command received by a front end."""
        values.setdefault("created", utcnow())
        return self._insert("interactions", records.interaction(values))

    def update_interaction(self, interaction_id: int, **values: Any) -> None:
        """Change a recorded interaction (its final status or error)."""
        self._update("interactions", interaction_id, values)

    # ---- idempotency keys ---------------------------------------------------

    def claim_idempotency_key(
        self,
        *,
        user_id: int,
        key: str,
        endpoint: str,
        request_hash: str,
        owner: str,
        now: str,
        until: str,
        expired: str,
    ) -> tuple[bool, dict[str, Any]]:
        """Claim a request's key for ``owner`` until ``until``, or read who holds it."""
        with self.write():
            self._execute("DELETE FROM idempotency_keys WHERE created < %s", [expired])
            cursor = self._execute(
                "INSERT INTO idempotency_keys (user_id, key, endpoint, request_hash, state, "
                "owner, lease_until, created) VALUES (%s, %s, %s, %s, 'running', %s, %s, %s) "
                "ON CONFLICT (user_id, key) DO NOTHING",
                [user_id, key, endpoint, request_hash, owner, until, now],
            )
            claimed = cursor.rowcount == 1
            if not claimed:
                cursor = self._execute(
                    "UPDATE idempotency_keys SET owner = %s, lease_until = %s "
                    "WHERE user_id = %s AND key = %s AND state = 'running' AND lease_until < %s "
                    "AND endpoint = %s AND request_hash = %s",
                    [owner, until, user_id, key, now, endpoint, request_hash],
                )
                claimed = cursor.rowcount == 1
            names, found = self._query(
                f"SELECT {_KEY_COLUMNS} FROM idempotency_keys WHERE user_id = %s AND key = %s",
                [user_id, key],
            )
        return claimed, dict(zip(names, found[0], strict=True))

    def renew_idempotency_key(self, key_id: int, owner: str, until: str) -> bool:
        """Extend the lease of a key ``owner`` still runs; False when it lost it."""
        return (
            self._execute(
                "UPDATE idempotency_keys SET lease_until = %s "
                "WHERE id = %s AND owner = %s AND state = 'running'",
                [until, key_id, owner],
            ).rowcount
            == 1
        )

    def finish_idempotency_key(
        self,
        key_id: int,
        owner: str,
        *,
        status_code: int,
        response: str,
        session_id: int | None,
        message_id: int | None,
    ) -> None:
        """Record the answer to a key's first request; retries get it from now on."""
        self._execute(
            "UPDATE idempotency_keys SET state = 'done', owner = NULL, lease_until = NULL, "
            "status_code = %s, response = %s, session_id = %s, message_id = %s "
            "WHERE id = %s AND owner = %s AND state = 'running'",
            [status_code, response, session_id, message_id, key_id, owner],
        )

    # ---- notices: once per interval across processes (the sharded bot) -------

    def claim_notice(self, user_id: int, source: str, name: str, since: str, now: str) -> bool:
        """Record the notice ``name`` to a user unless one was recorded after ``since``.

        The check and the insert run under a transaction-scoped advisory lock on
        (user, notice): under read committed, ``INSERT … WHERE NOT EXISTS`` alone
        would let two transactions both see no row.
        """
        with self.write() as conn:
            try:
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    [f"notice:{user_id}:{name}"],
                )
                cursor = conn.execute(
                    "INSERT INTO interactions (user_id, source, kind, name, status, created) "
                    "SELECT %s, %s, 'notice', %s, 'sent', %s WHERE NOT EXISTS ("
                    "SELECT 1 FROM interactions WHERE user_id = %s AND kind = 'notice' "
                    "AND name = %s AND created > %s)",
                    [user_id, source, name, now, user_id, name, since],
                )
            except psycopg.Error as exc:
                raise self._error(exc) from None
            return cursor.rowcount == 1

    def release_idempotency_key(self, key_id: int, owner: str) -> None:
        """Forget a running key (its request stored nothing), so a retry runs again."""
        self._execute(
            "DELETE FROM idempotency_keys WHERE id = %s AND owner = %s AND state = 'running'",
            [key_id, owner],
        )

    # ---- a user's questions, checked and stored in one step (any instance) --

    def lock_user(self, user_id: int) -> None:
        """Lock the user's row until the write block ends (other instances wait).

        ``FOR NO KEY UPDATE``: inserting rows that refer to the user (its
        messages, its sessions) stays free. The checks that follow are separate
        statements, so under read committed they see what the previous holder
        committed.
        """
        self._execute("SELECT 1 FROM users WHERE id = %s FOR NO KEY UPDATE", [user_id])

    def user_asks(self, user_id: int, *, since: str | None, live_after: str | None) -> UserAsks:
        """A user's questions since ``since``, and whether one of them is being answered."""
        params: list[Any] = []
        answering = "false"
        if live_after is not None:
            # the partial index of streaming replies, then each one's question
            answering = (
                "EXISTS (SELECT 1 FROM messages r WHERE r.status = 'streaming' "
                "AND r.lease_until > %s AND (SELECT q.author_id FROM messages q "
                "WHERE q.session_id = r.session_id AND q.id < r.id "
                "ORDER BY q.id DESC LIMIT 1) = %s)"
            )
            params += [live_after, user_id]
        if since is None:
            sql = f"SELECT 0, NULL::timestamptz, {answering}"
        else:
            sql = (
                f"SELECT count(*), min(created), {answering} FROM messages "
                "WHERE author_id = %s AND role = 'user' AND created > %s"
            )
            params += [user_id, since]
        _, found = self._query(sql, params)
        questions, oldest, busy = found[0]
        return UserAsks(int(questions), oldest, bool(busy))

    # ---- change feed (LISTEN/NOTIFY) ----------------------------------------

    def changes(self, poll_interval: float = 0.5) -> ChangeFeed:
        """Other instances' changes, pushed by the database (no polling).

        A connection of the feed's own LISTENs to the notices of
        ``m008_change_notices``; those marked with this store's origin are its own
        writes and skipped. ``poll_interval`` is not used.
        """
        return changes.ListenFeed(self._listen_connection, self.origin)

    def _announce(self, conn: psycopg.Connection[Any]) -> None:
        """Have the notices of what ``conn`` committed sent (by the announcer's thread)."""
        payloads = changes.take_notices(conn)
        if not payloads:
            return
        with self._announcer_lock:
            if self._announcer is None:
                self._announcer = changes.Announcer(lambda: self._side_connection(ANNOUNCE_NAME))
        self._announcer.send(payloads)

    def _listen_connection(self) -> psycopg.Connection[Any]:
        """A new connection outside the pool, for a feed to LISTEN on."""
        return self._side_connection(LISTEN_NAME)

    def _side_connection(self, name: str) -> psycopg.Connection[Any]:
        """A connection outside the pool, named in ``pg_stat_activity``."""
        return psycopg.connect(
            self._secret_url,
            autocommit=True,
            options=OPTIONS,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=name,
            # a silently dropped network is noticed too, not only a closed socket
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            tcp_user_timeout=30_000,
        )

    # ---- whole-history copies (mschat db) -----------------------------------

    def _stored_columns(self, table: str) -> str:
        """A table's columns but the generated ones (``messages.search`` is derived from
        the content: reading it would double what a page of messages costs)."""
        columns = self._columns.get(table)
        if columns is None:
            _, found = self._query(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                [table],
            )
            columns = self._columns[table] = ", ".join(f'"{row[0]}"' for row in found)
        return columns

    def count_rows(self, table: str) -> int:
        """How many rows one of ``TABLES`` holds."""
        _, found = self._query(f"SELECT count(*) FROM {checked_table(table)}")
        return int(found[0][0])

    def insert_rows(
        self, table: str, rows: Sequence[dict[str, Any]], *, replace: bool = False
    ) -> int:
        """Write rows of one of ``TABLES`` as they are, ids included, in one transaction.

        The rows' keys are the columns (times as ISO text, flags 0/1). New rows go in
        by ``COPY``; a row whose id is taken is an error, or with ``replace`` overwrites
        that row where they differ. Returns how many rows changed. Identity sequences
        are not moved: :meth:`advance_ids` does that once the copy is done.
        """
        if not rows:
            return 0
        columns = checked_columns(rows[0])
        names = ", ".join(columns)
        values = [[_flag(c, row[c]) for c in columns] for row in rows]
        try:
            with self.write() as conn:
                if not replace:
                    with conn.cursor().copy(
                        f"COPY {checked_table(table)} ({names}) FROM STDIN"
                    ) as copy:  # type: ignore[arg-type]
                        for row in values:
                            copy.write_row(row)
                    return len(values)
                others = [c for c in columns if c != "id"]
                cursor = conn.cursor()
                cursor.executemany(
                    f"INSERT INTO {checked_table(table)} AS t ({names}) "  # type: ignore[arg-type]
                    f"VALUES ({', '.join('%s' for _ in columns)}) ON CONFLICT (id) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in others)
                    + f" WHERE ({', '.join(f't.{c}' for c in others)}) IS DISTINCT FROM "
                    f"({', '.join(f'excluded.{c}' for c in others)})",
                    values,
                )
                return max(cursor.rowcount, 0)
        except (DatabaseError, psycopg.Error) as exc:
            # inside an outer write block the driver's error arrives as it is
            reason = self._error(exc) if isinstance(exc, psycopg.Error) else exc
            first, last = rows[0].get("id"), rows[-1].get("id")
            raise DatabaseError(f"cannot write {table} rows {first}–{last}: {reason}") from None

    def last_id(self, table: str) -> int:
        """The largest id ``table`` ever handed out: its identity sequence or its largest row."""
        _, found = self._query(
            f"SELECT greatest((SELECT max(id) FROM {checked_table(table)}), "
            "pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass), 0)",
            [table],
        )
        return int(found[0][0])

    def advance_ids(self, table: str, past: int) -> bool:
        """Make the new ids of ``table`` larger than ``past``; whether anything changed."""
        _, found = self._query(
            "SELECT setval(seq, %s) FROM (SELECT pg_get_serial_sequence(%s, 'id')::regclass "
            "AS seq) s WHERE coalesce(pg_sequence_last_value(seq), 0) < %s",
            [past, checked_table(table), past],
        )
        return bool(found)

    def count_reply_surfaces(self) -> int:
        """How many replies' Discord surfaces are kept."""
        _, found = self._query("SELECT count(*) FROM reply_surfaces")
        return int(found[0][0])

    # ---- tool calls and tool grants (MCP) -------------------------------------

    def add_tool_call(self, **values: Any) -> int:
        """Record one tool call of a reply."""
        return self._insert("tool_calls", values)

    def tool_calls(self, message_ids: Sequence[int]) -> list[ToolCallRecord]:
        """The tool calls of these replies, in the order they were made."""
        if not message_ids:
            return []
        _, rows = self._query(
            f"SELECT {TOOL_CALL_COLUMNS} FROM tool_calls WHERE message_id = ANY(%s) ORDER BY id",
            [list(message_ids)],
        )
        return [ToolCallRecord(*row) for row in rows]

    def tool_grants(self, user_id: int) -> list[str]:
        """The tools granted to a user, sorted."""
        _, rows = self._query(
            "SELECT tool FROM tool_grants WHERE user_id = %s ORDER BY tool", [user_id]
        )
        return [row[0] for row in rows]

    def change_tool_grants(
        self, user_id: int, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> list[str]:
        """Grant and revoke in one transaction; the grants after it."""
        with self.write():
            for tool in add:
                self._execute(
                    "INSERT INTO tool_grants (user_id, tool, created) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [user_id, tool, utcnow()],
                )
            for tool in remove:
                self._execute(
                    "DELETE FROM tool_grants WHERE user_id = %s AND tool = %s", [user_id, tool]
                )
            return self.tool_grants(user_id)


_COPIED = [c for c in records.MESSAGE_COLUMNS if c not in ("id", "session_id")]


def _quiet_pool_log() -> None:
    """psycopg_pool warns of each lost connection: in the application's log if it has
    one, never as raw driver text on a terminal (Python's last-resort handler)."""
    logger = logging.getLogger("psycopg.pool")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _away(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the server is out of reach (down, restarting, overloaded),
    rather than refusing this statement or these credentials."""
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, PoolClosed):
        return False
    if exc.sqlstate is not None:
        return exc.sqlstate.startswith("08") or exc.sqlstate in _AWAY
    # no SQLSTATE: the client's own failure (refused, timed out, connection lost, no
    # pooled connection), or the server's FATAL answer to a connection attempt
    text = str(exc)
    return "FATAL:" not in text or "the database system is" in text or "too many" in text


def _short_reason(exc: psycopg.Error) -> str:
    """The driver's reason in a few words: the last clause of its first line."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    reason = " ".join(lines[0].rsplit(": ", 1)[-1].split())
    return reason[:1].lower() + reason[1:]


def _hung_up(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server hung up on this idle connection (it restarted or stopped).

    An idle connection receives nothing unasked but the server's goodbye or a
    notification: a quiet socket costs one poll, a readable one an empty query.
    """
    if conn.closed:
        return True
    if not _readable(conn.fileno()):
        return False
    try:
        conn.execute("")
    except psycopg.Error:
        conn.close()
        return True
    return False


def _readable(fd: int) -> bool:
    """Whether data (or the end of the stream) waits on a socket, without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _names(cursor: psycopg.Cursor[Any]) -> list[str]:
    """The result's column names (``cursor.description`` builds an object per column)."""
    result = cursor.pgresult
    if result is None:
        return []
    return [(result.fname(i) or b"").decode() for i in range(result.nfields)]


def _new_id(cursor: psycopg.Cursor[Any]) -> int:
    """The id an ``INSERT … RETURNING id`` made."""
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def _visibility(user_id: int | None, include_public: bool) -> tuple[list[str], list[Any]]:
    if user_id is None:
        return [], []
    if include_public:
        return ["(s.creator_id = %s OR s.public)"], [user_id]
    return ["s.creator_id = %s"], [user_id]


def _flag(column: str, value: Any) -> Any:
    """A flag given as 0/1 as a boolean (the column is boolean here)."""
    return bool(value) if column in _BOOLEANS and value is not None else value
