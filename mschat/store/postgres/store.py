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
autocommit mode: a single statement is its own transaction.

Every lease (session turns, reply writers, idempotency keys) is one atomic
``UPDATE … WHERE`` or ``INSERT … ON CONFLICT``: under read committed, a second
writer waits for the first and re-checks the condition on the row it left.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from mschat.core.errors import DatabaseError, NotFound
from mschat.core.models import Message, SearchHit, Session, User, utcnow
from mschat.redact import redact_text
from mschat.store import records
from mschat.store.contract import TABLES, SearchOrder, Store
from mschat.store.postgres import migrations
from mschat.store.postgres.search import RECENT, SearchQuery
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

_LEFT_ALONE = "it was left unchanged"

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


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("timestamptz", IsoTimestampLoader)


def _values(values: dict[str, Any]) -> dict[str, Any]:
    """Flags given as 0/1 (the core's, SQLite's) as booleans."""
    return {
        key: bool(value) if key in _BOOLEANS and value is not None else value
        for key, value in values.items()
    }


class PostgresStore(Store):
    """Repository over a pool of connections to one PostgreSQL database; thread-safe."""

    backend = "postgresql"

    def __init__(self, url: str, *, threads: int = THREADS) -> None:
        self._secret_url = url
        self._threads = threads
        self._held = threading.local()
        first = self._connect()
        try:
            info = first.info
            self._identity = "postgresql://{}@{}:{}/{}".format(
                quote(info.user, safe=""), quote(info.host, safe="/"), info.port, info.dbname
            )
            self._check_and_migrate(first)
        finally:
            first.close()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=threads + 2,
            kwargs={"autocommit": True, "options": OPTIONS},
            configure=_configure,
            timeout=CONNECT_TIMEOUT,
            name="mschat",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except PoolTimeout as exc:
            raise DatabaseError(f"cannot connect to database {self.url}: timed out") from exc

    @classmethod
    def open(cls, url: str) -> PostgresStore:
        """Connect to the database at ``url``, migrating it to the current schema."""
        return cls(url)

    @property
    def url(self) -> str:
        """``postgresql://user@host:port/dbname``: where the store is, without secrets."""
        return self._identity

    @property
    def threads(self) -> int:
        """The pool's worker connections."""
        return self._threads

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()

    # ---- connections and errors ---------------------------------------------

    def _shown(self) -> str:
        return getattr(self, "_identity", None) or redact_text(self._secret_url)

    def _error(self, exc: psycopg.Error, doing: str = "use") -> DatabaseError:
        """One line, without the URL's password, naming the database."""
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return DatabaseError(f"cannot write database {self._shown()}: it is read-only")
        reason = " ".join(str(exc).split()) or type(exc).__name__
        password = urlsplit(self._secret_url).password
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
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseError(f"cannot reach database {self.url}: no connection") from exc
        except psycopg.Error as exc:
            raise self._error(exc) from None

    @contextmanager
    def write(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on one pooled connection for this thread; nested blocks join it."""
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                self._held.conn = conn
                try:
                    yield conn
                finally:
                    self._held.conn = None
        except PoolTimeout as exc:
            raise DatabaseError(f"cannot reach database {self.url}: no connection") from exc
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

    def _check_and_migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse, before any write, another application's or a newer mschat's database;
        then apply the pending migrations in one transaction under an advisory lock."""
        try:
            if self._pending(conn) == []:
                return  # the fast path: current
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
                pending = self._pending(conn)  # another process may have migrated meanwhile
                if not pending:
                    return
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
            f"SELECT * FROM {table} WHERE id > %s ORDER BY id LIMIT %s", [after_id, limit]
        )
        result = []
        for row in found:
            data = dict(zip(names, row, strict=True))
            data.pop("search", None)  # derived from content
            result.append({k: int(v) if isinstance(v, bool) else v for k, v in data.items()})
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
        self._execute("DELETE FROM sessions WHERE id = %s", [session_id])

    def delete_user_sessions(self, user_id: int) -> int:
        """Delete every session a user created; returns how many."""
        return self._execute("DELETE FROM sessions WHERE creator_id = %s", [user_id]).rowcount

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
        inserted = _values(values)
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
            [session_id] + [row.get(c) if c != "created" else row.get(c) or now for c in copied]
            for row in rows
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

    def questions_since(self, user_id: int, since: str) -> tuple[int, str | None]:
        """How many questions a user asked since ``since``, and the oldest one's time."""
        _, found = self._query(
            "SELECT count(*), min(created) FROM messages "
            "WHERE author_id = %s AND role = 'user' AND created > %s",
            [user_id, since],
        )
        return int(found[0][0]), found[0][1]

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
        return self._execute(
            "DELETE FROM messages WHERE session_id = %s AND id >= %s", [session_id, message_id]
        ).rowcount

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

    def renew_reply_lease(self, message_id: int, lease_until: str) -> None:
        """Push a streaming reply's lease forward (its writer is alive)."""
        self._execute(
            "UPDATE messages SET lease_until = %s WHERE id = %s AND status = 'streaming'",
            [lease_until, message_id],
        )

    def interrupt_stale_replies(self, now: str, legacy_before: str, reason: str) -> int:
        """Mark replies still ``streaming`` whose writer is gone as interrupted (one UPDATE)."""
        return self._execute(
            "UPDATE messages SET status = 'interrupted', error = %s, lease_until = NULL "
            "WHERE status = 'streaming' "
            "AND (lease_until < %s OR (lease_until IS NULL AND created < %s))",
            [reason, now, legacy_before],
        ).rowcount

    # ---- operations logs ----------------------------------------------------

    def add_api_call(self, **values: Any) -> int:
        """Record one provider request."""
        values.setdefault("started", utcnow())
        return self._insert("api_calls", values)

    def api_calls_for(self, message_id: int) -> list[dict[str, Any]]:
        """The provider requests made for one reply, oldest first."""
        names, found = self._query(
            "SELECT * FROM api_calls WHERE message_id = %s ORDER BY id", [message_id]
        )
        return [dict(zip(names, row, strict=True)) for row in found]

    def add_feedback(self, **values: Any) -> int:
        """Record a user's feedback on a reply."""
        values.setdefault("created", utcnow())
        return self._insert("feedback", values)

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


_COPIED = [c for c in records.MESSAGE_COLUMNS if c not in ("id", "session_id")]


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
