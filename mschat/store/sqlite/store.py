"""The SQLite store: every read and write of an mschat database file.

The embedded default: one file, zero set-up, readable by ``sqlite-utils`` and
Datasette. One connection, shared by the threads under a lock (``threads`` is 1).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mschat.core.errors import DatabaseError, NotFound
from mschat.core.models import AttachmentInfo, Message, SearchHit, Session, User, utcnow
from mschat.files import create_private, private_dir
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
from mschat.store.schema import OutdatedSchema
from mschat.store.sqlite.search import fts_query, snippet
from mschat.store.terms import has_word, is_literal, search_terms

if TYPE_CHECKING:
    from sqlite_utils import Database

#: how many migrations this mschat knows; kept equal to len(KNOWN_MIGRATIONS) by a
#: test, so opening a current database never imports sqlite-utils (startup time)
SCHEMA_VERSION = 14

#: ``PRAGMA application_id`` of an mschat database ("msch"): with ``user_version``
#: it tells from the file header alone whether mschat may use a file
APPLICATION_ID = 0x6D736368

MIGRATION_SET = "mschat"

BUSY_TIMEOUT_MS = 10_000

#: how long to wait for another process's migration (a rebuild of a million
#: messages takes about ten seconds)
MIGRATION_WAIT_MS = 300_000

#: page cache while migrating (negative: KiB): a table rebuild of a million
#: messages takes a fifth less time with 64 MB than with SQLite's 2 MB default
MIGRATION_CACHE_SIZE = -65_536

_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEFT_ALONE = "it was left unchanged"

_USER_FIELDS = records.USER_COLUMNS
_SESSION_COLUMNS = records.SESSION_COLUMNS
_MESSAGE_COLUMNS = records.MESSAGE_COLUMNS

_SEARCH_ORDER = {
    "newest": "messages_fts.rowid DESC",
    "relevance": "messages_fts.rank, messages_fts.rowid DESC",
}

_SESSION_SELECT = (
    "SELECT "
    + ", ".join(f"s.{c}" for c in _SESSION_COLUMNS)
    + ", u.name AS creator_name FROM sessions s JOIN users u ON u.id = s.creator_id"
)
_MESSAGE_SELECT = (
    "SELECT "
    + ", ".join(f"m.{c}" for c in _MESSAGE_COLUMNS)
    + ", a.name AS author_name FROM messages m LEFT JOIN users a ON a.id = m.author_id"
)


def open_connection(path: str | Path) -> sqlite3.Connection:
    """Open the database file as a raw sqlite3 connection, creating it if missing.

    A new file is made 0600 in 0700 directories before SQLite opens it (its -wal
    and -shm get the same mode). An existing file is first read as plain bytes:
    one that is not SQLite, another application's, or from a newer mschat is
    refused before SQLite could write to it or create files beside it.
    """
    if str(path) == ":memory:":
        return sqlite3.connect(":memory:", check_same_thread=False)
    path = Path(path)
    header = _read_header(path)
    if header:
        _check_header(path, header)
    else:
        try:
            private_dir(path.parent)
            create_private(path)
        except OSError as exc:
            raise DatabaseError(f"cannot create database {path}: {exc.strerror}") from exc
    try:
        return sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from exc


def _read_header(path: Path) -> bytes:
    """The file's first 100 bytes (SQLite's header); empty if it is missing or empty."""
    try:
        with open(path, "rb") as file:
            return file.read(100)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise DatabaseError(f"cannot open database {path}: {exc.strerror}") from exc


def _check_header(path: Path, header: bytes) -> None:
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise DatabaseError(
            f"{path} is not an SQLite database; give mschat another file "
            f"(--db or MSCHAT_DB) — {_LEFT_ALONE}"
        )
    _check_version(
        path,
        version=int.from_bytes(header[60:64], "big", signed=True),
        application_id=int.from_bytes(header[68:72], "big", signed=True),
    )


def _check_version(path: str | Path, *, version: int, application_id: int) -> None:
    """Refuse another application's database or one from a newer mschat."""
    if application_id not in (0, APPLICATION_ID):
        raise _foreign(path, f"its application id is {application_id:#x}")
    if application_id == APPLICATION_ID and version > SCHEMA_VERSION:
        raise _newer(path, f"schema {version}")


def _foreign(path: str | Path, why: str) -> DatabaseError:
    return DatabaseError(
        f"{path} is another application's SQLite database, not mschat's ({why}); "
        f"give mschat another file (--db or MSCHAT_DB) — {_LEFT_ALONE}"
    )


def _newer(path: str | Path, what: str) -> DatabaseError:
    return DatabaseError(
        f"database {path} was written by a newer mschat ({what}); "
        f"upgrade mschat to use it — {_LEFT_ALONE}"
    )


def _read_only(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the file (or its directory) cannot be written."""
    return _result_code(exc) == sqlite3.SQLITE_READONLY


def _result_code(exc: sqlite3.Error) -> int:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF  # without the extended part


#: the next entry a provider's free slot takes (see ``Store.claim_queue``)
NEXT_QUEUED = (
    "SELECT q.id FROM queue q WHERE q.state = 'waiting' AND q.provider = ? "
    "AND NOT EXISTS (SELECT 1 FROM queue r WHERE r.user_id = q.user_id "
    "AND (r.state = 'running' OR r.id < q.id)) "
    "ORDER BY q.priority DESC, q.id LIMIT 1"
)


class SQLiteStore(Store):
    """Repository over one SQLite connection; thread-safe.

    The ``sqlite_utils`` wrapper (``db``) is made on first use only, so a one-shot
    ``mschat ask`` on a current database never imports it.
    """

    backend = "sqlite"

    def __init__(self, conn: sqlite3.Connection, *, upgrade: bool = True) -> None:
        self.conn = conn
        self._db: Database | None = None
        self._lock = threading.RLock()
        try:
            self._configure()
            if upgrade:
                self.migrate()
            else:
                self._create_if_blank()
        except BaseException:
            # closed at once: SQLite removes the -wal and -shm it made to read
            self.conn.close()
            raise

    @classmethod
    def open(cls, path: str | Path, *, upgrade: bool = True) -> SQLiteStore:
        """Open the database file at ``path``, migrating it to the current schema.

        ``upgrade=False``: an older schema is refused (``OutdatedSchema``) instead;
        a blank database is still made an mschat database.
        """
        return cls(open_connection(path), upgrade=upgrade)

    @property
    def db(self) -> Database:
        """The ``sqlite_utils.Database`` over this store's connection."""
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self.conn, execute_plugins=False)
        return self._db

    @property
    def path(self) -> str:
        """The database file's path (or ':memory:')."""
        row = self.conn.execute("PRAGMA database_list").fetchone()
        return row[2] or ":memory:"

    @property
    def url(self) -> str:
        """The database file's path (it holds no secret)."""
        return self.path

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()

    # ---- schema -------------------------------------------------------------

    def _configure(self) -> None:
        """Connection settings, then the version check, and only then any write."""
        try:
            self._settings()
            version, application_id = self._version()
            if (version, application_id) != (SCHEMA_VERSION, APPLICATION_ID):
                self._check_contents(version)
            self._use_wal()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"cannot use database {self.path}: {exc}") from exc

    def _settings(self) -> None:
        # per connection: none of these reads or writes the file
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA recursive_triggers = ON")

    def _version(self) -> tuple[int, int]:
        """``(user_version, application_id)``, refusing what mschat must not use.

        A WAL database in a directory mschat cannot write has no -shm to read
        through: it is then read as an immutable file, if no -wal holds changes.
        """
        query = "SELECT * FROM pragma_user_version, pragma_application_id"
        try:
            version, application_id = self.conn.execute(query).fetchone()
        except sqlite3.OperationalError as exc:
            if not _read_only(exc) and _result_code(exc) != sqlite3.SQLITE_CANTOPEN:
                raise
            self._reopen_immutable()
            version, application_id = self.conn.execute(query).fetchone()
        _check_version(self.path, version=version, application_id=application_id)
        return version, application_id

    def _reopen_immutable(self) -> None:
        path = Path(self.path)
        wal = path.with_name(path.name + "-wal")
        if path.name == ":memory:" or (wal.exists() and wal.stat().st_size):
            raise DatabaseError(
                f"cannot read database {path}: it is read-only, and its last changes are "
                f"still in {wal.name}; open it once where it can be written"
            )
        self.conn.close()
        self.conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False
        )
        self._settings()

    def _check_contents(self, version: int) -> None:
        """Refuse, before any write, a file mschat did not make (or a newer mschat did).

        Only a database that is not current gets here: a blank one, another
        application's, or one from an mschat that did not mark its files yet.
        """
        tables = [
            row[0]
            for row in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite^_%' ESCAPE '^' ORDER BY rowid"
            )
        ]
        if not tables:
            return  # a blank file: mschat makes its tables
        applied = self.applied_migrations() if "_sqlite_migrations" in tables else []
        if not applied:
            shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
            raise _foreign(self.path, f"its tables: {shown}")
        from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS

        unknown = [name for name in applied if name not in KNOWN_MIGRATIONS]
        if unknown:
            raise _newer(self.path, f"unknown migrations: {', '.join(unknown)}")
        if version > SCHEMA_VERSION:
            raise _newer(self.path, f"schema {version}")

    def _use_wal(self) -> None:
        """WAL, so readers and a writer in other processes do not block each other."""
        if self.path == ":memory:":
            return
        try:
            if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.OperationalError as exc:
            if not _read_only(exc):
                raise
            # a read-only file is read as it is

    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in this database, in order."""
        try:
            return [
                row[0]
                for row in self.conn.execute(
                    "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
                    [MIGRATION_SET],
                )
            ]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise DatabaseError(f"cannot read database {self.path}: {exc}") from exc

    def migrate(self) -> None:
        """Apply pending migrations (the file was checked on open)."""
        with self._lock:
            if self._version() == (SCHEMA_VERSION, APPLICATION_ID):
                return  # fast path: already current
            from mschat.store.sqlite.migrations import migrations

            # a table rebuild must not cascade its DROP TABLE; the pragma is a
            # no-op inside a transaction, so it is set around it
            self.conn.execute("PRAGMA foreign_keys = OFF")
            cache = self.conn.execute("PRAGMA cache_size").fetchone()[0]
            self.conn.execute(f"PRAGMA cache_size = {MIGRATION_CACHE_SIZE}")
            # another process may be migrating a big database: wait for it
            self.conn.execute(f"PRAGMA busy_timeout = {MIGRATION_WAIT_MS}")
            try:
                # one write transaction: two processes opening a blank or old
                # database at once must not both migrate it
                with self.write():
                    if self._version() == (SCHEMA_VERSION, APPLICATION_ID):
                        return  # the other process did
                    broken = set(self.conn.execute("PRAGMA foreign_key_check"))
                    migrations.apply(self.db)
                    # rows that already referred to missing ones are not the upgrade's doing
                    if new := set(self.conn.execute("PRAGMA foreign_key_check")) - broken:
                        raise sqlite3.IntegrityError(
                            f"{len(new)} rows would refer to missing rows, e.g. {min(new)}"
                        )
                    self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            except sqlite3.DatabaseError as exc:
                raise DatabaseError(f"cannot upgrade database {self.path}: {exc}") from exc
            finally:
                self.conn.execute(f"PRAGMA cache_size = {cache}")
                self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                self.conn.execute("PRAGMA foreign_keys = ON")

    def data_version(self) -> int:
        """A number that changes when another connection commits (cheap polling)."""
        with self._lock:
            return self.conn.execute("PRAGMA data_version").fetchone()[0]

    # ---- low-level helpers ---------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken with BEGIN IMMEDIATE (no deadlock on upgrade).

        Nested uses join the outer transaction, so several writes commit once. A
        read-only database is one clear ``DatabaseError``.
        """
        with self._lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.rollback()
                    raise
                else:
                    self.conn.commit()
            except sqlite3.OperationalError as exc:
                if _read_only(exc):
                    raise DatabaseError(
                        f"cannot write database {self.path}: it is read-only"
                    ) from exc
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        with self._lock:
            cursor = self.conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return names, cursor.fetchall()

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.write() as conn:
            cursor = conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())
            )
            return int(cursor.lastrowid or 0)

    def _update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        if not values:
            return
        assignments = ", ".join(f"{key} = ?" for key in values)
        with self.write() as conn:
            conn.execute(
                f"UPDATE {table} SET {assignments} WHERE id = ?", [*values.values(), row_id]
            )

    # ---- users --------------------------------------------------------------

    def get_user(self, user_id: int) -> User:
        """The user with this id, or NotFound."""
        names, rows = self._query(
            f"SELECT {', '.join(_USER_FIELDS)} FROM users WHERE id = ?", [user_id]
        )
        if not rows:
            raise NotFound(f"no user with id {user_id}", hint="list users with `mschat users list`")
        return records.user(rows[0], names)

    def find_user(self, kind: str, external_id: str) -> User | None:
        """The user of this kind and external id, if any."""
        names, rows = self._query(
            f"SELECT {', '.join(_USER_FIELDS)} FROM users WHERE kind = ? AND external_id = ?",
            [kind, external_id],
        )
        return records.user(rows[0], names) if rows else None

    def create_user(self, **values: Any) -> User:
        """Insert a user (INSERT OR IGNORE on (kind, external_id)) and return it."""
        now = utcnow()
        values = {"created": now, "updated": now, "modified": now, **values}
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.write() as conn:
            conn.execute(
                f"INSERT OR IGNORE INTO users ({columns}) VALUES ({marks})",
                list(values.values()),
            )
        user = self.find_user(values["kind"], values["external_id"])
        assert user is not None
        return user

    def update_user(self, user_id: int, **values: Any) -> User:
        """Change a user's fields and return the user."""
        self._update("users", user_id, values)
        return self.get_user(user_id)

    def list_users(self, kind: str | None = None, limit: int = 1000, offset: int = 0) -> list[User]:
        """Users, most recently active first."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        names, rows = self._query(
            f"SELECT {', '.join(_USER_FIELDS)} FROM users {where} "
            "ORDER BY updated DESC, id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [records.user(row, names) for row in rows]

    def find_users(self, text: str) -> list[User]:
        """Users whose name or external id equals ``text`` (or whose id does)."""
        names, rows = self._query(
            f"SELECT {', '.join(_USER_FIELDS)} FROM users "
            "WHERE name = ? OR external_id = ? OR CAST(id AS TEXT) = ? ORDER BY id",
            [text, text, text],
        )
        return [records.user(row, names) for row in rows]

    # ---- sessions -----------------------------------------------------------

    def create_session(self, **values: Any) -> Session:
        """Insert a session and return it."""
        now = utcnow()
        values = {"created": now, "updated": now, "modified": now, **values}
        return self.get_session(self._insert("sessions", values))

    def get_session(self, session_id: int) -> Session:
        """The session with this id, or NotFound."""
        names, rows = self._query(f"{_SESSION_SELECT} WHERE s.id = ?", [session_id])
        if not rows:
            raise NotFound(
                f"no session {session_id}", hint="list sessions with `mschat sessions list`"
            )
        return records.session(rows[0], names)

    def update_session(self, session_id: int, **values: Any) -> Session:
        """Change a session's fields and return it."""
        self._update("sessions", session_id, values)
        return self.get_session(session_id)

    def touch_session(self, session_id: int) -> None:
        """Bump a session's ``updated`` time (a dialogue happened)."""
        self._update("sessions", session_id, {"updated": utcnow()})

    def take_lease(self, session_id: int, owner: str, now: str, until: str) -> bool:
        """Take (or renew) a session's lease unless another owner holds a live one."""
        with self.write() as conn:
            cursor = conn.execute(
                "UPDATE sessions SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
                "(lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                [owner, until, session_id, owner, now],
            )
            return cursor.rowcount == 1

    def release_lease(self, session_id: int, owner: str) -> None:
        """Give a session's lease back (if this owner still holds it)."""
        with self.write() as conn:
            conn.execute(
                "UPDATE sessions SET lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_owner = ?",
                [session_id, owner],
            )

    def delete_session(self, session_id: int) -> None:
        """Delete a session and (by cascade) its messages."""
        with self.write() as conn:
            listed = self._listed(conn, "session_id = ?", [session_id])
            conn.execute("DELETE FROM sessions WHERE id = ?", [session_id])
            self._drop_unused(conn, listed)

    def delete_user_sessions(self, user_id: int) -> int:
        """Delete every session a user created; returns how many."""
        with self.write() as conn:
            listed = self._listed(
                conn, "session_id IN (SELECT id FROM sessions WHERE creator_id = ?)", [user_id]
            )
            cursor = conn.execute("DELETE FROM sessions WHERE creator_id = ?", [user_id])
            self._drop_unused(conn, listed)
            return cursor.rowcount

    @staticmethod
    def _listed(conn: sqlite3.Connection, where: str, params: list[Any]) -> set[str]:
        """The files the messages about to be deleted list."""
        rows = conn.execute(
            f"SELECT attachments FROM messages WHERE attachments IS NOT NULL AND {where}", params
        ).fetchall()
        return listed_hashes(rows)

    @staticmethod
    def _drop_unused(conn: sqlite3.Connection, hashes: set[str]) -> None:
        """Delete the stored contents no message lists any more (of those just unlisted)."""
        for sha256 in hashes:
            conn.execute(
                "DELETE FROM attachments WHERE sha256 = ? AND NOT EXISTS (SELECT 1 FROM "
                "messages WHERE attachments IS NOT NULL AND instr(attachments, ?) > 0)",
                [sha256, sha256],
            )

    def save_attachment(self, info: AttachmentInfo, data: bytes) -> None:
        """Store a file's content under its SHA-256, unless it is stored already."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO attachments (sha256, mime, size, data, created) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
                [info.sha256, info.mime, len(data), data, utcnow()],
            )

    def attachment_data(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """The stored contents of these files, by SHA-256 (unknown ones left out)."""
        wanted = list(dict.fromkeys(sha256s))
        if not wanted:
            return {}
        _, rows = self._query(
            f"SELECT sha256, data FROM attachments WHERE sha256 IN "
            f"({', '.join('?' for _ in wanted)})",
            wanted,
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
        """Sessions visible to a user (own, plus others' public), most recent first.

        ``user_id=None`` lists every session (admin view).
        """
        clauses, params = self._visibility(user_id, include_public)
        if not include_hidden:
            clauses.append("s.hidden = 0")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        names, rows = self._query(
            f"{_SESSION_SELECT} {where} ORDER BY s.updated DESC, s.id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [records.session(row, names) for row in rows]

    def count_sessions(self, user_id: int | None, *, include_public: bool = False) -> int:
        """How many sessions ``list_sessions`` would page through."""
        clauses, params = self._visibility(user_id, include_public)
        clauses.append("s.hidden = 0")
        _, rows = self._query(
            f"SELECT count(*) FROM sessions s WHERE {' AND '.join(clauses)}", params
        )
        return int(rows[0][0])

    @staticmethod
    def _visibility(user_id: int | None, include_public: bool) -> tuple[list[str], list[Any]]:
        if user_id is None:
            return [], []
        if include_public:
            return ["(s.creator_id = ? OR s.public = 1)"], [user_id]
        return ["s.creator_id = ?"], [user_id]

    def find_sessions_by_title(self, title: str) -> list[Session]:
        """Sessions whose title equals ``title`` (case-insensitive), newest first."""
        names, rows = self._query(
            f"{_SESSION_SELECT} WHERE s.title = ? COLLATE NOCASE ORDER BY s.updated DESC",
            [title],
        )
        return [records.session(row, names) for row in rows]

    def last_session_of(self, user_id: int) -> Session | None:
        """The session where the user spoke most recently, if any."""
        names, rows = self._query(
            f"{_SESSION_SELECT} WHERE s.id = (SELECT session_id FROM messages "
            "WHERE author_id = ? ORDER BY id DESC LIMIT 1)",
            [user_id],
        )
        if rows:
            return records.session(rows[0], names)
        sessions = self.list_sessions(user_id, limit=1)
        return sessions[0] if sessions else None

    # ---- messages -----------------------------------------------------------

    def add_message(self, *, touch_session: bool = True, **values: Any) -> Message:
        """Insert a message; bumps the session's and author's ``updated`` time."""
        now = values.setdefault("created", utcnow())
        inserted = records.message_values(values)
        with self.write() as conn:
            columns = ", ".join(inserted)
            marks = ", ".join("?" for _ in inserted)
            cursor = conn.execute(
                f"INSERT INTO messages ({columns}) VALUES ({marks})", list(inserted.values())
            )
            message_id = int(cursor.lastrowid or 0)
            if touch_session:
                conn.execute(
                    "UPDATE sessions SET updated = ? WHERE id = ?", [now, values["session_id"]]
                )
            if values.get("author_id") is not None:
                conn.execute(
                    "UPDATE users SET updated = ? WHERE id = ?", [now, values["author_id"]]
                )
        # built from what was inserted: a SELECT per message is a third of an ask's cost
        if "attachments" in values:
            values["attachments"] = records.attachments_of(values["attachments"])
        return Message(id=message_id, author_id=values.pop("author_id", None), **values)

    def insert_messages(
        self, session_id: int, rows: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> int:
        """Copy messages (fork, import) into a session in one transaction; returns how many.

        ``ref``, if given, becomes the first copied message's ``external_ref``.
        """
        copied = [c for c in _MESSAGE_COLUMNS if c not in ("id", "session_id", "external_ref")]
        sql = (
            f"INSERT INTO messages (session_id, {', '.join(copied)}) "
            f"VALUES (?, {', '.join('?' for _ in copied)})"
        )
        now = utcnow()
        values = [
            [session_id] + [records.copied_value(row, c, now) for c in copied] for row in rows
        ]
        with self.write() as conn:
            first = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
            conn.executemany(sql, values)
            if ref is not None and values:
                conn.execute(
                    "UPDATE messages SET external_ref = ? "
                    "WHERE id = (SELECT min(id) FROM messages WHERE session_id = ? AND id > ?)",
                    [ref, session_id, first],
                )
        return len(values)

    def has_message_ref(self, external_ref: str, creator_id: int) -> bool:
        """Whether a session of ``creator_id`` holds a message with this reference."""
        _, rows = self._query(
            "SELECT 1 FROM messages m JOIN sessions s ON s.id = m.session_id "
            "WHERE m.external_ref = ? AND s.creator_id = ? LIMIT 1",
            [external_ref, creator_id],
        )
        return bool(rows)

    def get_message(self, message_id: int) -> Message:
        """The message with this id, or NotFound."""
        names, rows = self._query(f"{_MESSAGE_SELECT} WHERE m.id = ?", [message_id])
        if not rows:
            raise NotFound(f"no message {message_id}")
        return records.message(rows[0], names)

    def update_message(self, message_id: int, **values: Any) -> None:
        """Change a message's fields (content while streaming, final status...)."""
        self._update("messages", message_id, values)

    def save_reply_surface(
        self, reply_id: int, kind: str, usable_until: str, **values: Any
    ) -> None:
        """Remember where a streaming reply shows, replacing what was saved."""
        row = {"reply_id": reply_id, "kind": kind, "usable_until": usable_until, **values}
        row["created"] = utcnow()
        columns = ", ".join(checked_columns(row))
        with self.write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO reply_surfaces ({columns}) "
                f"VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )

    def drop_reply_surface(self, reply_id: int) -> None:
        """Forget where a reply shows."""
        with self.write() as conn:
            conn.execute("DELETE FROM reply_surfaces WHERE reply_id = ?", [reply_id])

    def claim_reply_surfaces(self, now: str, lease_until: str) -> list[ReplySurface]:
        """Claim the surfaces of replies whose writer is gone, each for one caller only."""
        if not self._query(SURFACES_TO_CLAIM.replace("%s", "?"), [now])[1]:
            return []  # the usual case: a read, no write lock every few seconds
        claimed: list[ReplySurface] = []
        with self.write() as conn:
            rows = conn.execute(SURFACES_TO_CLAIM.replace("%s", "?"), [now]).fetchall()
            for row in rows:
                surface = ReplySurface._make([*row[:8], False])
                if surface.status == "streaming" and surface.usable_until > now:
                    won = conn.execute(
                        "UPDATE messages SET lease_until = ? WHERE id = ? "
                        "AND status = 'streaming' AND lease_until < ?",
                        [lease_until, surface.reply_id, now],
                    ).rowcount
                    if won:
                        claimed.append(surface._replace(resume=True))
                    continue
                won = conn.execute(
                    "DELETE FROM reply_surfaces WHERE reply_id = ?", [surface.reply_id]
                ).rowcount
                if won and surface.status == "streaming":
                    conn.execute(
                        "UPDATE messages SET status = 'interrupted', error = ?, "
                        "lease_until = NULL WHERE id = ?",
                        [SURFACE_GONE, surface.reply_id],
                    )
                    surface = surface._replace(status="interrupted")
                if won:
                    claimed.append(surface)
        return claimed

    def interrupt_stale_replies(self, now: str, legacy_before: str, reason: str) -> int:
        """Mark replies still ``streaming`` whose writer is gone as interrupted.

        A writer is gone when its lease ended before ``now``; a reply from before
        reply leases (none stored) when it was made before ``legacy_before``. A
        process killed mid-reply cannot mark its own reply, so others do. Only the
        partial index of streaming replies is read. Returns how many.
        """
        stale = (
            "status = 'streaming' AND (lease_until < ? OR (lease_until IS NULL AND created < ?))"
            f" AND {HELD_FOR_A_BOT.replace('%s', '?')}"
        )
        _, rows = self._query(f"SELECT id FROM messages WHERE {stale}", [now, legacy_before, now])
        if not rows:
            return 0
        with self.write() as conn:
            cursor = conn.executemany(
                "UPDATE messages SET status = 'interrupted', error = ?, lease_until = NULL "
                f"WHERE id = ? AND {stale}",
                [(reason, row[0], now, legacy_before, now) for row in rows],
            )
        return cursor.rowcount

    def find_message_by_ref(self, external_ref: str) -> Message | None:
        """The message carrying this external reference (e.g. a Discord message id)."""
        names, rows = self._query(
            f"{_MESSAGE_SELECT} WHERE m.external_ref = ? ORDER BY m.id DESC LIMIT 1",
            [external_ref],
        )
        return records.message(rows[0], names) if rows else None

    def delete_messages_from(self, session_id: int, message_id: int) -> int:
        """Delete a session's messages from ``message_id`` on; returns how many."""
        with self.write() as conn:
            where = "session_id = ? AND id >= ?"
            listed = self._listed(conn, where, [session_id, message_id])
            cursor = conn.execute(f"DELETE FROM messages WHERE {where}", [session_id, message_id])
            self._drop_unused(conn, listed)
            return cursor.rowcount

    def messages(
        self,
        session_id: int,
        *,
        limit: int | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[Message]:
        """A session's messages in order; ``limit`` keeps the last ones (paging back)."""
        clauses, params = ["m.session_id = ?"], [session_id]
        if before_id is not None:
            clauses.append("m.id < ?")
            params.append(before_id)
        if after_id is not None:
            clauses.append("m.id > ?")
            params.append(after_id)
        where = " AND ".join(clauses)
        if limit is None:
            names, rows = self._query(f"{_MESSAGE_SELECT} WHERE {where} ORDER BY m.id", params)
            return [records.message(row, names) for row in rows]
        names, rows = self._query(
            f"{_MESSAGE_SELECT} WHERE {where} ORDER BY m.id DESC LIMIT ?", [*params, limit]
        )
        return [records.message(row, names) for row in reversed(rows)]

    def messages_changed_since(self, session_id: int, after_id: int) -> list[Message]:
        """Messages newer than ``after_id`` plus any still streaming (live views)."""
        names, rows = self._query(
            f"{_MESSAGE_SELECT} WHERE m.session_id = ? AND (m.id > ? OR m.status = 'streaming')"
            " ORDER BY m.id",
            [session_id, after_id],
        )
        return [records.message(row, names) for row in rows]

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
        """Messages visible to a user that contain every term of ``text`` (FTS5)."""
        terms = search_terms(text)
        if not any(has_word(term) for term in terms):
            return []
        clauses, params = self._visibility(user_id, include_public)
        for term in filter(is_literal, terms):
            clauses.append("instr(lower(m.content), lower(?)) > 0")
            params.append(term)
        extra = "".join(f" AND {clause}" for clause in clauses)
        sql = (
            "SELECT m.id, m.session_id, s.title, m.role, m.created "
            "FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid "
            "JOIN sessions s ON s.id = m.session_id "
            f"WHERE messages_fts MATCH ?{extra} "
            f"ORDER BY {_SEARCH_ORDER[order]} LIMIT ? OFFSET ?"
        )
        try:
            _, rows = self._query(sql, [fts_query(terms), *params, limit, offset])
        except sqlite3.OperationalError as exc:
            raise DatabaseError(f"search failed: {exc}") from exc
        hits = []
        for message_id, session_id, title, role, created in rows:
            text, highlights = self._snippet(message_id, terms)
            hits.append(SearchHit(message_id, session_id, title, role, created, text, highlights))
        return hits

    def _snippet(self, message_id: int, terms: list[str]) -> tuple[str, list[tuple[int, int]]]:
        # read in pieces: only the part around the first match leaves the file
        with self._lock:
            try:
                with self.conn.blobopen("messages", "content", message_id, readonly=True) as blob:
                    return snippet(blob, terms)
            except sqlite3.OperationalError:
                return "", []  # deleted since the query

    # ---- operations logs ----------------------------------------------------

    def add_api_call(self, **values: Any) -> int:
        """Record one provider request."""
        values.setdefault("started", utcnow())
        return self._insert("api_calls", values)

    def usage_totals(
        self,
        *,
        user_id: int | None = None,
        session_id: int | None = None,
        since: str | None = None,
    ) -> list[UsageTotal]:
        """Tokens of the provider requests made since ``since``, per user and model."""
        _, rows = self._query(
            *usage_query("?", user_id=user_id, session_id=session_id, since=since)
        )
        return usage_rows(rows)

    def add_feedback(self, **values: Any) -> int | None:
        """Record a user's feedback on a reply; its id, or None for a repeated vote."""
        values.setdefault("created", utcnow())
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.write() as conn:
            cursor = conn.execute(
                f"INSERT INTO feedback ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                list(values.values()),
            )
            return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else None

    def feedback_counts(self, message_id: int) -> dict[str, int]:
        """How many votes each feedback kind has on one reply (kinds without any left out)."""
        _, rows = self._query(
            "SELECT kind, count(*) FROM feedback WHERE message_id = ? GROUP BY kind", [message_id]
        )
        return {str(kind): int(count) for kind, count in rows}

    def list_feedback(self, limit: int = 50) -> list[dict[str, Any]]:
        """Every feedback row on the ``limit`` replies most recently given feedback."""
        names, rows = self._query(LIST_FEEDBACK.format(mark="?"), [limit])
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
            table, user_id=user_id, since=since, limit=limit, mark="?", kind=kind
        )
        names, rows = self._query(query, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def prune_logs(self, before: str) -> dict[str, int]:
        """Delete the interactions and API calls recorded before ``before``."""
        counts: dict[str, int] = {}
        with self.write() as conn:
            for table in PRUNED_LOGS:
                cursor = conn.execute(
                    f"DELETE FROM {table} WHERE {LOG_TABLES[table]} < ?", [before]
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

    def read_rows(
        self, table: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Rows of one of ``TABLES`` with an id above ``after_id``, in id order."""
        if table not in TABLES:
            raise ValueError(f"not an mschat table: {table!r}")
        names, rows = self._query(
            f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit]
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    def table_counts(self) -> dict[str, int]:
        """Row counts of the main tables (diagnostics, tests)."""
        tables = ["users", "sessions", "messages", "api_calls", "feedback", "interactions"]
        _, rows = self._query("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables))
        return dict(zip(tables, rows[0], strict=True))

    # ---- live settings (mschat config set) ------------------------------------

    # ---- the queue of questions ------------------------------------------------

    def enqueue(
        self, user_id: int, provider: str, priority: int, now: str, until: str, size: int | None
    ) -> int | None:
        """Put a question in the queue unless ``size`` entries already wait."""
        with self.write() as conn:
            conn.execute("DELETE FROM queue WHERE lease_until < ?", [now])
            if size is not None:
                (waiting,) = conn.execute(
                    "SELECT count(*) FROM queue WHERE state = 'waiting'"
                ).fetchone()
                if waiting >= size:
                    return None
            cursor = conn.execute(
                "INSERT INTO queue (user_id, provider, priority, created, lease_until) "
                "VALUES (?, ?, ?, ?, ?)",
                [user_id, provider, priority, now, until],
            )
            return int(cursor.lastrowid or 0)

    def claim_queue(
        self, provider: str, max_running: int | None, now: str, until: str
    ) -> list[int]:
        """Start the next waiting entries of a provider (the write transaction serialises)."""
        claimed: list[int] = []
        with self.write() as conn:
            conn.execute("DELETE FROM queue WHERE lease_until < ?", [now])
            (running,) = conn.execute(
                "SELECT count(*) FROM queue WHERE state = 'running' AND provider = ?", [provider]
            ).fetchone()
            while max_running is None or running < max_running:
                row = conn.execute(NEXT_QUEUED, [provider]).fetchone()
                if row is None:
                    break
                conn.execute(
                    "UPDATE queue SET state = 'running', lease_until = ? WHERE id = ?",
                    [until, row[0]],
                )
                claimed.append(row[0])
                running += 1
        return claimed

    def queue_states(self, entry_ids: Sequence[int]) -> dict[int, str]:
        """The state of those entries still queued."""
        if not entry_ids:
            return {}
        marks = ", ".join("?" for _ in entry_ids)
        _, rows = self._query(f"SELECT id, state FROM queue WHERE id IN ({marks})", entry_ids)
        return {row[0]: row[1] for row in rows}

    def queue_places(self, entry_ids: Sequence[int], now: str) -> dict[int, QueuePlace]:
        """The state of those entries still queued, and the place of the waiting ones."""
        if not entry_ids:
            return {}
        ids = list(entry_ids)
        _, rows = self._query(
            queue_places_query(len(entry_ids)).replace("%s", "?"), [*ids, now, *ids, *ids]
        )
        return queue_places(rows)

    def renew_queue(self, entry_ids: Sequence[int], until: str) -> None:
        """Extend the leases of entries this process still waits for or runs."""
        if not entry_ids:
            return
        marks = ", ".join("?" for _ in entry_ids)
        with self.write() as conn:
            conn.execute(
                f"UPDATE queue SET lease_until = ? WHERE id IN ({marks})", [until, *entry_ids]
            )

    def leave_queue(self, entry_id: int) -> None:
        """Remove an entry: its slot is free."""
        with self.write() as conn:
            conn.execute("DELETE FROM queue WHERE id = ?", [entry_id])

    def queue_status(self, now: str) -> QueueStatus:
        """The live entries of the queue."""
        _, rows = self._query(
            "SELECT state, provider, count(*), min(created) FROM queue "
            "WHERE lease_until >= ? GROUP BY state, provider",
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
            conn.execute(
                "INSERT INTO settings (key, value, updated, updated_by) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value, updated = excluded.updated, "
                "updated_by = excluded.updated_by",
                [key, value, updated or utcnow(), updated_by],
            )

    def unset_setting(self, key: str) -> bool:
        """Remove a setting from the database; whether it was there."""
        with self.write() as conn:
            return conn.execute("DELETE FROM settings WHERE key = ?", [key]).rowcount == 1

    def api_calls_for(self, message_id: int) -> list[dict[str, Any]]:
        """The provider requests made for one reply, oldest first."""
        names, rows = self._query(
            "SELECT * FROM api_calls WHERE message_id = ? ORDER BY id", [message_id]
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    # ---- replies and their leases (the answer pipeline) ---------------------

    def add_reply(self, session_id: int, model: str, lease_until: str) -> Message:
        """Insert an empty ``streaming`` reply, leased to its writer until ``lease_until``."""
        now = utcnow()
        with self.write() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (session_id, role, content, model, created, status, "
                "lease_until) VALUES (?, 'assistant', '', ?, ?, 'streaming', ?)",
                [session_id, model, now, lease_until],
            )
        return Message(
            id=int(cursor.lastrowid or 0),
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
        with self.write() as conn:
            conn.execute(
                "UPDATE messages SET lease_until = ? WHERE id = ? AND status = 'streaming'",
                [lease_until, message_id],
            )

    def retitle_untouched_session(self, session_id: int, default: str, title: str) -> bool:
        """Give a session still titled ``default`` and without messages a title.

        A session the user renamed, or one that already has messages, keeps its title.
        """
        with self.write() as conn:
            cursor = conn.execute(
                "UPDATE sessions SET title = ? WHERE id = ? AND title = ? AND message_count = 0",
                [title, session_id, default],
            )
            return cursor.rowcount == 1

    # ---- idempotency keys ---------------------------------------------------

    _KEY_COLUMNS = (
        "id, user_id, key, endpoint, request_hash, state, owner, lease_until, "
        "session_id, message_id, status_code, response, created"
    )

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
        """Claim a request's key for ``owner`` until ``until``, or read who holds it.

        One transaction: keys created before ``expired`` are forgotten first; the
        unique (user_id, key) pair decides who claims a new key; a key still running
        under a lease that ended before ``now`` is taken over by the same request.
        Returns whether ``owner`` now holds the key, and its row.
        """
        with self.write() as conn:
            conn.execute("DELETE FROM idempotency_keys WHERE created < ?", [expired])
            cursor = conn.execute(
                "INSERT INTO idempotency_keys (user_id, key, endpoint, request_hash, state, "
                "owner, lease_until, created) VALUES (?, ?, ?, ?, 'running', ?, ?, ?) "
                "ON CONFLICT (user_id, key) DO NOTHING",
                [user_id, key, endpoint, request_hash, owner, until, now],
            )
            claimed = cursor.rowcount == 1
            if not claimed:
                cursor = conn.execute(
                    "UPDATE idempotency_keys SET owner = ?, lease_until = ? "
                    "WHERE user_id = ? AND key = ? AND state = 'running' AND lease_until < ? "
                    "AND endpoint = ? AND request_hash = ?",
                    [owner, until, user_id, key, now, endpoint, request_hash],
                )
                claimed = cursor.rowcount == 1
            cursor = conn.execute(
                f"SELECT {self._KEY_COLUMNS} FROM idempotency_keys WHERE user_id = ? AND key = ?",
                [user_id, key],
            )
            names = [d[0] for d in cursor.description]
            row = dict(zip(names, cursor.fetchone(), strict=True))
        return claimed, row

    def renew_idempotency_key(self, key_id: int, owner: str, until: str) -> bool:
        """Extend the lease of a key ``owner`` still runs; False when it lost it."""
        with self.write() as conn:
            cursor = conn.execute(
                "UPDATE idempotency_keys SET lease_until = ? "
                "WHERE id = ? AND owner = ? AND state = 'running'",
                [until, key_id, owner],
            )
            return cursor.rowcount == 1

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
        with self.write() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET state = 'done', owner = NULL, lease_until = NULL, "
                "status_code = ?, response = ?, session_id = ?, message_id = ? "
                "WHERE id = ? AND owner = ? AND state = 'running'",
                [status_code, response, session_id, message_id, key_id, owner],
            )

    def release_idempotency_key(self, key_id: int, owner: str) -> None:
        """Forget a running key (its request stored nothing), so a retry runs again."""
        with self.write() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE id = ? AND owner = ? AND state = 'running'",
                [key_id, owner],
            )

    # ---- notices: once per interval across processes (the sharded bot) -------

    def claim_notice(self, user_id: int, source: str, name: str, since: str, now: str) -> bool:
        """Record the notice ``name`` to a user unless one was recorded after ``since``.

        One statement in one write transaction: of several processes claiming the
        same notice at once, exactly one gets True (and sends it).
        """
        with self.write() as conn:
            cursor = conn.execute(
                "INSERT INTO interactions (user_id, source, kind, name, status, created) "
                "SELECT ?, ?, 'notice', ?, 'sent', ? WHERE NOT EXISTS ("
                "SELECT 1 FROM interactions WHERE user_id = ? AND kind = 'notice' "
                "AND name = ? AND created > ?)",
                [user_id, source, name, now, user_id, name, since],
            )
            return cursor.rowcount == 1

    # ---- a user's questions, checked and stored in one step (any instance) --

    def lock_user(self, user_id: int) -> None:
        """Nothing more to take: ``write()`` began with BEGIN IMMEDIATE, which already
        keeps every other writer, in any process, out until it ends."""

    def user_asks(self, user_id: int, *, since: str | None, live_after: str | None) -> UserAsks:
        """A user's questions since ``since``, and whether one of them is being answered."""
        params: list[Any] = []
        answering = "0"
        if live_after is not None:
            # the partial index of streaming replies, then each one's question: the
            # message before it, by rowid backwards (the session's index would sort
            # all of a long session's messages)
            answering = (
                "EXISTS (SELECT 1 FROM messages r WHERE r.status = 'streaming' "
                "AND r.lease_until > ? AND (SELECT q.author_id FROM messages q NOT INDEXED "
                "WHERE q.session_id = r.session_id AND q.id < r.id "
                "ORDER BY q.id DESC LIMIT 1) = ?)"
            )
            params += [live_after, user_id]
        if since is None:
            sql = f"SELECT 0, NULL, {answering}"
        else:
            sql = (
                f"SELECT count(*), min(created), {answering} FROM messages "
                "WHERE author_id = ? AND role = 'user' AND created > ?"
            )
            params += [user_id, since]
        _, rows = self._query(sql, params)
        questions, oldest, busy = rows[0]
        return UserAsks(int(questions), oldest, bool(busy))

    # ---- change feed (live views across instances) --------------------------

    def changes(self, poll_interval: float = 0.5) -> ChangeFeed:
        """Other processes' commits, seen by polling ``PRAGMA data_version``."""
        from mschat.store.sqlite.changes import DataVersionFeed

        return DataVersionFeed(self, poll_interval)

    # ---- schema state and whole-history copies (mschat db) ------------------

    def _create_if_blank(self) -> None:
        """Without upgrading: a blank database is made mschat's, an older schema refused."""
        if self._version() == (SCHEMA_VERSION, APPLICATION_ID):
            return
        from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS

        applied = self.applied_migrations()
        pending = [name for name in KNOWN_MIGRATIONS if name not in applied]
        if applied and pending:
            raise OutdatedSchema(self.path, pending)
        self.migrate()  # a blank database, or a current one from before schema marks

    def count_rows(self, table: str) -> int:
        """How many rows one of ``TABLES`` holds."""
        _, rows = self._query(f"SELECT count(*) FROM {checked_table(table)}")
        return int(rows[0][0])

    def insert_rows(
        self, table: str, rows: Sequence[dict[str, Any]], *, replace: bool = False
    ) -> int:
        """Write rows of one of ``TABLES`` as they are, ids included, in one transaction.

        The rows' keys are the columns. A row whose id is taken is an error, or with
        ``replace`` overwrites that row where they differ. Returns how many rows changed.
        """
        if not rows:
            return 0
        columns = checked_columns(rows[0])
        sql = (
            f"INSERT INTO {checked_table(table)} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        if replace:
            others = [c for c in columns if c != "id"]
            sql += (
                " ON CONFLICT (id) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in others)
                + " WHERE "
                + " OR ".join(f"{table}.{c} IS NOT excluded.{c}" for c in others)
            )
        values = [[row[c] for c in columns] for row in rows]
        try:
            with self.write() as conn:
                return conn.executemany(sql, values).rowcount
        except sqlite3.DatabaseError as exc:
            first, last = rows[0].get("id"), rows[-1].get("id")
            raise DatabaseError(
                f"cannot write {table} rows {first}–{last} into {self.path}: {exc}"
            ) from exc

    def last_id(self, table: str) -> int:
        """The largest id ``table`` ever handed out (deleted rows' too, where SQLite keeps it)."""
        _, rows = self._query(
            f"SELECT max(coalesce((SELECT max(id) FROM {checked_table(table)}), 0), "
            "coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))",
            [table],
        )
        return int(rows[0][0])

    def advance_ids(self, table: str, past: int) -> bool:
        """Make the new ids of ``table`` larger than ``past``; whether anything changed.

        Only the AUTOINCREMENT tables (users, sessions, messages) remember ids
        beyond their largest row; the others take the one after their largest.
        """
        _, rows = self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? "
            "AND sql LIKE '%AUTOINCREMENT%'",
            [checked_table(table)],
        )
        if not rows or self.last_id(table) >= past:
            return False
        with self.write() as conn:
            changed = conn.execute(
                "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", [past, table]
            ).rowcount
            if not changed:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", [table, past])
        return True

    def count_reply_surfaces(self) -> int:
        """How many replies' Discord surfaces are kept."""
        _, rows = self._query("SELECT count(*) FROM reply_surfaces")
        return int(rows[0][0])

    # ---- tool calls and tool grants (MCP) -------------------------------------

    def add_tool_call(self, **values: Any) -> int:
        """Record one tool call of a reply."""
        return self._insert("tool_calls", values)

    def tool_calls(self, message_ids: Sequence[int]) -> list[ToolCallRecord]:
        """The tool calls of these replies, in the order they were made."""
        if not message_ids:
            return []
        marks = ", ".join("?" for _ in message_ids)
        _, rows = self._query(
            f"SELECT {TOOL_CALL_COLUMNS} FROM tool_calls WHERE message_id IN ({marks}) ORDER BY id",
            list(message_ids),
        )
        return [ToolCallRecord(*row) for row in rows]

    def tool_grants(self, user_id: int) -> list[str]:
        """The tools granted to a user, sorted."""
        _, rows = self._query(
            "SELECT tool FROM tool_grants WHERE user_id = ? ORDER BY tool", [user_id]
        )
        return [row[0] for row in rows]

    def change_tool_grants(
        self, user_id: int, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> list[str]:
        """Grant and revoke in one transaction; the grants after it."""
        with self.write() as conn:
            for tool in add:
                conn.execute(
                    "INSERT INTO tool_grants (user_id, tool, created) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [user_id, tool, utcnow()],
                )
            for tool in remove:
                conn.execute(
                    "DELETE FROM tool_grants WHERE user_id = ? AND tool = ?", [user_id, tool]
                )
            return self.tool_grants(user_id)
