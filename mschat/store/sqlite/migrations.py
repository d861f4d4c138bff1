"""Append-only named migrations. Never edit or reorder one that has shipped."""

from __future__ import annotations

import re
import sqlite3

from sqlite_utils import Database, Migrations

from mschat.store.sqlite.store import MIGRATION_SET

migrations = Migrations(MIGRATION_SET)


@migrations()
def m001_initial(db: Database) -> None:
    """Users, sessions, messages, api_calls, feedback, interactions."""
    db.executescript(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,                 -- local | discord | api
            external_id TEXT NOT NULL,          -- Discord id, API user string, login
            name TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL,              -- last dialogue
            modified TEXT NOT NULL,             -- last settings change
            status TEXT NOT NULL,               -- new | active | disabled
            model TEXT,
            current_session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
            system_msg TEXT,
            show_public INTEGER NOT NULL DEFAULT 0,
            attach INTEGER NOT NULL DEFAULT 0,
            max_tokens INTEGER NOT NULL DEFAULT 600,
            temperature REAL NOT NULL DEFAULT 0.8,
            rate_limit INTEGER,
            priority INTEGER NOT NULL DEFAULT 0,
            ignored INTEGER NOT NULL DEFAULT 0,
            admin INTEGER NOT NULL DEFAULT 0,
            UNIQUE (kind, external_id)
        );
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            creator_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            model TEXT,
            system_msg TEXT,
            public INTEGER NOT NULL DEFAULT 0,
            origin TEXT NOT NULL,               -- terminal | api | discord_dm | discord_guild
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            modified TEXT NOT NULL,
            forked_from_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
            hidden INTEGER NOT NULL DEFAULT 0,
            message_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX idx_sessions_creator ON sessions(creator_id, updated);
        CREATE INDEX idx_sessions_public ON sessions(public, updated);
        CREATE INDEX idx_sessions_updated ON sessions(updated);
        CREATE INDEX idx_sessions_forked_from ON sessions(forked_from_id);
        CREATE INDEX idx_users_current_session ON users(current_session_id);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            author_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
            role TEXT NOT NULL,                 -- system | user | assistant
            content TEXT NOT NULL,
            model TEXT,
            created TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete',
            tokens_in INTEGER,
            tokens_out INTEGER,
            latency_ms INTEGER,
            finish_reason TEXT,
            error TEXT,
            external_ref TEXT                   -- e.g. the Discord message id of a reply
        );
        CREATE INDEX idx_messages_session_created ON messages(session_id, created);
        CREATE INDEX idx_messages_author ON messages(author_id);
        CREATE INDEX idx_messages_external_ref ON messages(external_ref)
            WHERE external_ref IS NOT NULL;
        CREATE TABLE api_calls (
            id INTEGER PRIMARY KEY,
            message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
            user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
            provider TEXT,
            model TEXT,
            started TEXT NOT NULL,
            latency_ms INTEGER,
            first_token_ms INTEGER,
            status TEXT NOT NULL,               -- ok | error | retry | interrupted
            http_status INTEGER,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            finish_reason TEXT,
            error TEXT
        );
        CREATE INDEX idx_api_calls_message ON api_calls(message_id);
        CREATE INDEX idx_api_calls_session ON api_calls(session_id);
        CREATE INDEX idx_api_calls_user ON api_calls(user_id);
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,                 -- good | outdated | inaccurate | other
            text TEXT,
            created TEXT NOT NULL
        );
        CREATE INDEX idx_feedback_message ON feedback(message_id);
        CREATE INDEX idx_feedback_user ON feedback(user_id);
        CREATE TABLE interactions (
            id INTEGER PRIMARY KEY,
            user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
            source TEXT NOT NULL,               -- discord | api | cli | tui
            kind TEXT NOT NULL,                 -- slash_command | component | message | ...
            name TEXT,
            guild_id TEXT,
            channel_id TEXT,
            payload TEXT,                       -- JSON
            status TEXT,
            error TEXT,
            created TEXT NOT NULL
        );
        CREATE INDEX idx_interactions_user ON interactions(user_id);
        CREATE INDEX idx_interactions_created ON interactions(created);
        CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
            UPDATE sessions SET message_count = message_count + 1
            WHERE id = new.session_id;
        END;
        CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
            UPDATE sessions SET message_count = message_count - 1
            WHERE id = old.session_id;
        END;
        CREATE VIEW session_dialogues AS
        SELECT s.id AS session_id, s.title, u.name AS creator, s.model, s.public,
               s.created, s.updated,
               (SELECT json_group_array(json_object(
                    'id', m.id, 'role', m.role, 'author', a.name,
                    'content', m.content, 'created', m.created, 'status', m.status))
                FROM (SELECT * FROM messages WHERE session_id = s.id
                      ORDER BY created, id) AS m
                LEFT JOIN users a ON a.id = m.author_id) AS dialogue
        FROM sessions s JOIN users u ON u.id = s.creator_id;
        """
    )
    db.table("messages").enable_fts(
        ["content"], fts_version="FTS5", create_triggers=True, tokenize="unicode61"
    )


@migrations()
def m002_streaming_index(db: Database) -> None:
    """Find replies still streaming without a scan (live views, stale recovery)."""
    db.execute(
        "CREATE INDEX idx_messages_streaming ON messages(created) WHERE status = 'streaming'"
    )


@migrations()
def m003_session_lease(db: Database) -> None:
    """A lease per session, so asks from several processes take turns."""
    db.execute("ALTER TABLE sessions ADD COLUMN lease_owner TEXT")
    db.execute("ALTER TABLE sessions ADD COLUMN lease_until TEXT")


@migrations()
def m004_reply_lease(db: Database) -> None:
    """A streaming reply's lease: its writer renews it, so a dead writer shows at once."""
    db.execute("ALTER TABLE messages ADD COLUMN lease_until TEXT")


@migrations()
def m005_idempotency_keys(db: Database) -> None:
    """Requests retried with the same Idempotency-Key are answered once."""
    db.executescript(
        """
        CREATE TABLE idempotency_keys (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            key TEXT NOT NULL,                  -- the caller's Idempotency-Key header
            endpoint TEXT NOT NULL,             -- e.g. POST /chat
            request_hash TEXT NOT NULL,         -- the same key with another body is refused
            state TEXT NOT NULL,                -- running | done
            owner TEXT,                         -- the process answering, while running
            lease_until TEXT,                   -- a dead owner's key can be taken over
            session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
            message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            status_code INTEGER,                -- the first answer, replayed to retries
            response TEXT,
            created TEXT NOT NULL,
            UNIQUE (user_id, key)
        );
        CREATE INDEX idx_idempotency_keys_created ON idempotency_keys(created);
        CREATE INDEX idx_idempotency_keys_session ON idempotency_keys(session_id);
        CREATE INDEX idx_idempotency_keys_message ON idempotency_keys(message_id);
        """
    )


#: the tables whose ids outlive their rows: ``-s ID``, ``X-Mschat-Session`` and
#: Discord buttons name them, so a new row must never get an old one's id
_IDS_NEVER_REUSED = ("users", "sessions", "messages")


@migrations()
def m006_ids_never_reused(db: Database) -> None:
    """Users, sessions and messages get AUTOINCREMENT ids, so a deleted id never returns.

    SQLite's table rebuild (foreign keys are off while migrations run): each
    table is copied into a new one declared with AUTOINCREMENT (which seeds
    ``sqlite_sequence`` with the largest id), the old one is dropped and the new
    one renamed. Columns, indexes and foreign keys are taken from the current
    schema; the views and triggers are dropped first and made again at the end.
    The FTS index is kept: it refers to message ids, which do not change.
    """
    conn = db.conn
    schema = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
    ).fetchall()
    dependents = [(kind, name, sql) for kind, name, _, sql in schema if kind in ("view", "trigger")]
    for kind, name, _ in dependents:
        conn.execute(f'DROP {kind.upper()} "{name}"')
    for table in _IDS_NEVER_REUSED:
        (create,) = [sql for kind, name, _, sql in schema if kind == "table" and name == table]
        indexes = [sql for kind, _, owner, sql in schema if kind == "index" and owner == table]
        conn.execute(_with_autoincrement(create, table, f"new_{table}"))
        conn.execute(f"INSERT INTO new_{table} SELECT * FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE new_{table} RENAME TO {table}")
        for sql in indexes:
            conn.execute(sql)
    for _, _, sql in dependents:
        conn.execute(sql)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
        # DROP TABLE took the planner's statistics of the old tables with it
        for table in _IDS_NEVER_REUSED:
            conn.execute(f"ANALYZE {table}")


def _with_autoincrement(create: str, table: str, new_name: str) -> str:
    """``CREATE TABLE table (id INTEGER PRIMARY KEY, …)`` as ``new_name`` with AUTOINCREMENT."""
    head = re.match(rf'CREATE TABLE\s+"?{table}"?\s*\(', create)
    key = re.compile(r"\bid INTEGER PRIMARY KEY(?=\s*,)")
    if head is None or len(key.findall(create)) != 1:
        raise sqlite3.DatabaseError(f"unexpected schema of table {table}: {create[:80]!r}")
    body = key.sub("id INTEGER PRIMARY KEY AUTOINCREMENT", create[head.end() :])
    return f"CREATE TABLE {new_name} ({body}"


@migrations()
def m007_questions_index(db: Database) -> None:
    """A user's recent questions without reading all their messages: the rate limit
    counts them inside the write transaction that stores the next one."""
    db.execute(
        "CREATE INDEX idx_messages_questions ON messages(author_id, created) WHERE role = 'user'"
    )


@migrations()
def m008_change_notices(db: Database) -> None:
    """PostgreSQL pushes changes (NOTIFY triggers); SQLite's live views poll instead.

    Nothing to change here; the migration is recorded all the same, so both
    backends share one schema version.
    """


@migrations()
def m009_live_settings(db: Database) -> None:
    """Settings changed while mschat runs (``mschat config set``): one row per key.

    ``value`` is JSON text; a key without a row takes its value from config.toml.
    Other processes notice a change by the database's ``data_version``.
    """
    db.execute(
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
        "updated TEXT NOT NULL, updated_by TEXT)"
    )


#: a member's repeated click on the same feedback button is one vote (kept: the first)
FEEDBACK_ONCE = (
    "DELETE FROM feedback WHERE kind <> 'other' AND id NOT IN"
    " (SELECT min(id) FROM feedback WHERE kind <> 'other' GROUP BY message_id, user_id, kind)",
    "CREATE UNIQUE INDEX idx_feedback_once ON feedback(message_id, user_id, kind)"
    " WHERE kind <> 'other'",
)


@migrations()
def m010_feedback_logs(db: Database) -> None:
    """Good / outdated / inaccurate count once per member and answer (every "other"
    text counts): the database refuses the second vote, whichever process records it.
    API calls by time, for ``mschat logs api-calls --since`` and pruning old ones."""
    for statement in FEEDBACK_ONCE:
        db.execute(statement)
    db.execute("CREATE INDEX idx_api_calls_started ON api_calls(started)")


@migrations()
def m011_queue(db: Database) -> None:
    """The queue of questions waiting for (or holding) a provider's slot.

    ``state`` is ``waiting`` or ``running``; ``lease_until`` is renewed by the
    process that waits or answers, so a dead process's entries expire.
    """
    db.execute(
        "CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, "
        "provider TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, "
        "state TEXT NOT NULL DEFAULT 'waiting', created TEXT NOT NULL, "
        "lease_until TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_queue_state ON queue(state, provider, priority, id)")
    db.execute("CREATE INDEX idx_queue_user ON queue(user_id, id)")


@migrations()
def m012_reply_surfaces(db: Database) -> None:
    """Where a streaming reply shows on Discord, so a restarted bot can finish it there.

    One row per reply while it streams (and after, until the bot has dealt with it):
    the channel and first message, or an interaction's token until it expires
    (``usable_until``). The token is a credential: the row goes once not needed.
    """
    db.execute(
        "CREATE TABLE reply_surfaces (reply_id INTEGER PRIMARY KEY "
        "REFERENCES messages(id) ON DELETE CASCADE, kind TEXT NOT NULL, "
        "channel_id TEXT, message_id TEXT, application_id TEXT, token TEXT, "
        "usable_until TEXT NOT NULL, created TEXT NOT NULL)"
    )


@migrations()
def m013_attachments(db: Database) -> None:
    """Files that come with questions: each content stored once, by its SHA-256.

    A message lists its files (name, type, size, hash) as JSON in
    ``messages.attachments``; a content no message lists any more is deleted with
    the last message that did.
    """
    db.execute(
        "CREATE TABLE attachments (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "sha256 TEXT NOT NULL UNIQUE, mime TEXT NOT NULL, size INTEGER NOT NULL, "
        "data BLOB NOT NULL, created TEXT NOT NULL)"
    )
    db.execute("ALTER TABLE messages ADD COLUMN attachments TEXT")
    db.execute(
        "CREATE INDEX idx_messages_attachments ON messages(id) WHERE attachments IS NOT NULL"
    )


@migrations()
def m014_tool_calls(db: Database) -> None:
    """MCP tool calls stored with the reply that made them, and per-user tool grants.

    ``tool_grants.tool`` is ``SERVER/TOOL`` (or ``SERVER/*``): a Discord or API
    user may run it (``mschat users set --allow-tool``).
    """
    db.execute(
        "CREATE TABLE tool_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE, "
        "call_id TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL, "
        "arguments TEXT NOT NULL, result TEXT NOT NULL, status TEXT NOT NULL, "
        "started TEXT NOT NULL, finished TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_tool_calls_message ON tool_calls(message_id, id)")
    db.execute(
        "CREATE TABLE tool_grants (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, "
        "tool TEXT NOT NULL, created TEXT NOT NULL, UNIQUE (user_id, tool))"
    )


KNOWN_MIGRATIONS = [m.name for m in migrations._migrations]
