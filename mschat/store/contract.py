"""The store contract: every read and write the core and the front ends make.

One abstract class, :class:`Store`, and one implementation per backend
(``mschat.store.sqlite``, ``mschat.store.postgres``), picked by
:func:`mschat.store.open_store` from the database's path or URL. The tests of
``tests/store`` and ``tests/core`` run against both.

What every backend guarantees:

- Times are ISO-8601 UTC text (``utcnow()``'s form) in the dataclasses, however
  the backend stores them.
- Every method is one transaction on its own; :meth:`Store.write` makes several
  calls on one thread one transaction, and nested blocks join the outer one.
- Methods may be called from up to :attr:`Store.threads` threads at once.
- A lease (session turns, reply writers, idempotency keys) is taken or renewed by
  one atomic statement, so two processes never both hold it.
- Ids are never reused: a deleted row's id is never handed out again.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from mschat.core.errors import DatabaseError
from mschat.core.models import AttachmentInfo, Message, SearchHit, Session, User

#: the tables a whole history is made of, parents before children (``read_rows``)
TABLES = (
    "users",
    "sessions",
    "messages",
    "attachments",
    "api_calls",
    "feedback",
    "interactions",
    "idempotency_keys",
    "tool_calls",
    "tool_grants",
)

#: how search hits are ordered: newest first (the default), or best match first
SearchOrder = Literal["newest", "relevance"]


_COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def checked_table(name: str) -> str:
    """``name`` if it is one of :data:`TABLES` (it is then safe in SQL), else ValueError."""
    if name not in TABLES:
        raise ValueError(f"not an mschat table: {name!r}")
    return name


def checked_columns(row: dict[str, Any]) -> list[str]:
    """A row's column names, each checked to be a plain identifier (safe in SQL)."""
    names = list(row)
    bad = [name for name in names if not _COLUMN_NAME.fullmatch(name)]
    if bad:
        raise DatabaseError(f"not a column name: {bad[0]!r}")
    return names


#: the feedback rows of the replies most recently given feedback (``list_feedback``)
LIST_FEEDBACK = """
    SELECT f.id, f.message_id, m.session_id, s.title AS session_title,
           substr(m.content, 1, 300) AS answer, f.user_id, u.name AS user_name,
           f.kind, f.text, f.created
    FROM (
        SELECT message_id, max(id) AS latest FROM feedback
        GROUP BY message_id ORDER BY latest DESC LIMIT {mark}
    ) recent
    JOIN feedback f ON f.message_id = recent.message_id
    JOIN messages m ON m.id = f.message_id
    JOIN sessions s ON s.id = m.session_id
    LEFT JOIN users u ON u.id = f.user_id
    ORDER BY recent.latest DESC, f.id
"""


#: the operations logs ``mschat logs`` shows, each with the column of its time
LOG_TABLES = {"interactions": "created", "api_calls": "started", "feedback": "created"}
#: the logs pruned after ``logs.retention_days`` (feedback is kept: members' words)
PRUNED_LOGS = ("interactions", "api_calls")
#: the logs with a ``kind`` column (``list_log(kind=…)``)
KINDED_LOGS = ("interactions", "feedback")


def log_query(
    table: str,
    *,
    user_id: int | None,
    since: str | None,
    limit: int,
    mark: str,
    kind: str | None = None,
) -> tuple[str, list[Any]]:
    """SQL and parameters of :meth:`Store.list_log` (``mark``: the placeholder)."""
    if table not in LOG_TABLES:
        raise ValueError(f"not an operations log: {table!r}")
    if kind is not None and table not in KINDED_LOGS:
        raise ValueError(f"the {table} log has no kinds")
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if user_id is not None:
        where.append(f"t.user_id = {mark}")
        params.append(user_id)
    if since is not None:
        where.append(f"t.{LOG_TABLES[table]} >= {mark}")
        params.append(since)
    if kind is not None:
        where.append(f"t.kind = {mark}")
        params.append(kind)
    query = (
        f"SELECT t.*, u.name AS user_name FROM {table} t LEFT JOIN users u ON u.id = t.user_id"
        f" WHERE {' AND '.join(where)} ORDER BY t.id DESC LIMIT {mark}"
    )
    return query, [*params, limit]


class Store(ABC):
    """Repository over one mschat database; thread-safe."""

    #: which backend this is: "sqlite" or "postgresql"
    backend: str = ""

    # ---- the database itself ------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """The database's path or URL without any secret, for display and errors."""

    @property
    def identity(self) -> str:
        """A stable, secret-free key of this database (remembered state is keyed by it)."""
        return self.url

    @property
    def threads(self) -> int:
        """How many threads may call the store at once (the manager's worker threads)."""
        return 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    @abstractmethod
    def close(self) -> None:
        """Close the connections."""

    @abstractmethod
    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in this database, in order."""

    @abstractmethod
    def data_version(self) -> int:
        """A number that changes when the data changes (cheap polling by live views).

        The backend's change hook: SQLite's ``PRAGMA data_version``; on PostgreSQL
        the ``mschat_changes`` sequence that every write to users, sessions or
        messages advances (a push of changes to other instances starts there).
        """

    @abstractmethod
    def write(self) -> AbstractContextManager[object]:
        """One transaction across the store calls made in the block, on this thread.

        Nested blocks join the outer transaction, so several writes commit once;
        an error rolls all of them back. A read-only database is one clear
        ``DatabaseError``.
        """

    @abstractmethod
    def read_rows(
        self, table: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Rows of one of :data:`TABLES` with an id above ``after_id``, in id order.

        Every column as stored, times as ISO text and flags as 0/1, so a whole
        history can be read page by page the same way from any backend.
        """

    @abstractmethod
    def table_counts(self) -> dict[str, int]:
        """Row counts of the main tables (diagnostics, tests)."""

    # ---- users --------------------------------------------------------------

    @abstractmethod
    def get_user(self, user_id: int) -> User:
        """The user with this id, or NotFound."""

    @abstractmethod
    def find_user(self, kind: str, external_id: str) -> User | None:
        """The user of this kind and external id, if any."""

    @abstractmethod
    def create_user(self, **values: Any) -> User:
        """Insert a user unless one of this (kind, external_id) exists; return the user."""

    @abstractmethod
    def update_user(self, user_id: int, **values: Any) -> User:
        """Change a user's fields and return the user."""

    @abstractmethod
    def list_users(self, kind: str | None = None, limit: int = 1000, offset: int = 0) -> list[User]:
        """Users, most recently active first."""

    @abstractmethod
    def find_users(self, text: str) -> list[User]:
        """Users whose name or external id equals ``text`` (or whose id does)."""

    # ---- sessions -----------------------------------------------------------

    @abstractmethod
    def create_session(self, **values: Any) -> Session:
        """Insert a session and return it."""

    @abstractmethod
    def get_session(self, session_id: int) -> Session:
        """The session with this id, or NotFound."""

    @abstractmethod
    def update_session(self, session_id: int, **values: Any) -> Session:
        """Change a session's fields and return it."""

    @abstractmethod
    def touch_session(self, session_id: int) -> None:
        """Bump a session's ``updated`` time (a dialogue happened)."""

    @abstractmethod
    def retitle_untouched_session(self, session_id: int, default: str, title: str) -> bool:
        """Give a session still titled ``default`` and without messages a title.

        A session the user renamed, or one that already has messages, keeps its title.
        """

    @abstractmethod
    def take_lease(self, session_id: int, owner: str, now: str, until: str) -> bool:
        """Take (or renew) a session's lease unless another owner holds a live one."""

    @abstractmethod
    def release_lease(self, session_id: int, owner: str) -> None:
        """Give a session's lease back (if this owner still holds it)."""

    @abstractmethod
    def delete_session(self, session_id: int) -> None:
        """Delete a session and (by cascade) its messages."""

    @abstractmethod
    def delete_user_sessions(self, user_id: int) -> int:
        """Delete every session a user created; returns how many."""

    @abstractmethod
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

    @abstractmethod
    def count_sessions(self, user_id: int | None, *, include_public: bool = False) -> int:
        """How many sessions ``list_sessions`` would page through."""

    @abstractmethod
    def find_sessions_by_title(self, title: str) -> list[Session]:
        """Sessions whose title equals ``title`` (case-insensitive), newest first."""

    @abstractmethod
    def last_session_of(self, user_id: int) -> Session | None:
        """The session where the user spoke most recently, if any."""

    # ---- messages -----------------------------------------------------------

    @abstractmethod
    def add_message(self, *, touch_session: bool = True, **values: Any) -> Message:
        """Insert a message; bumps the session's and author's ``updated`` time."""

    @abstractmethod
    def insert_messages(
        self, session_id: int, rows: Sequence[dict[str, Any]], *, ref: str | None = None
    ) -> int:
        """Copy messages (fork, import) into a session in one transaction; returns how many.

        ``ref``, if given, becomes the first copied message's ``external_ref``.
        """

    @abstractmethod
    def has_message_ref(self, external_ref: str, creator_id: int) -> bool:
        """Whether a session of ``creator_id`` holds a message with this reference."""

    @abstractmethod
    def get_message(self, message_id: int) -> Message:
        """The message with this id, or NotFound."""

    @abstractmethod
    def update_message(self, message_id: int, **values: Any) -> None:
        """Change a message's fields (content while streaming, final status...)."""

    @abstractmethod
    def find_message_by_ref(self, external_ref: str) -> Message | None:
        """The message carrying this external reference (e.g. a Discord message id)."""

    @abstractmethod
    def delete_messages_from(self, session_id: int, message_id: int) -> int:
        """Delete a session's messages from ``message_id`` on; returns how many."""

    @abstractmethod
    def messages(
        self,
        session_id: int,
        *,
        limit: int | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[Message]:
        """A session's messages in order; ``limit`` keeps the last ones (paging back)."""

    @abstractmethod
    def messages_changed_since(self, session_id: int, after_id: int) -> list[Message]:
        """Messages newer than ``after_id`` plus any still streaming (live views)."""

    @abstractmethod
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
        """Messages visible to a user that contain every term of ``text``, newest first.

        Terms are literal: one with symbols (``C++``, ``foo.bar``) must appear as
        typed, ignoring ASCII case; a plain word matches a word of the message
        (accents ignored), the last one as a prefix. Quotes and operators are
        text, never query syntax. A search without any letter or digit finds
        nothing. ``order="relevance"`` puts the best matches first instead.
        Snippets are bounded whatever a message's size.
        """

    # ---- replies and their leases (the answer pipeline) ---------------------

    @abstractmethod
    def add_reply(self, session_id: int, model: str, lease_until: str) -> Message:
        """Insert an empty ``streaming`` reply, leased to its writer until ``lease_until``."""

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
        """A user's question with its files and the empty reply after it, all or none
        (``save_attachment``, ``add_message``, ``add_reply``). One transaction; a
        backend may write it in fewer round trips.
        """
        with self.write():
            for info, data in attachments:
                self.save_attachment(info, data)
            values: dict[str, Any] = {
                "session_id": session_id,
                "author_id": author_id,
                "role": "user",
                "content": content,
                "external_ref": external_ref,
            }
            if attachments:
                values["attachments"] = tuple(info for info, _ in attachments)
            asked = self.add_message(**values)
            return asked, self.add_reply(session_id, model, lease_until)

    # ---- attachments: files stored once per content ---------------------------

    @abstractmethod
    def save_attachment(self, info: AttachmentInfo, data: bytes) -> None:
        """Store a file's content under its SHA-256, unless it is stored already."""

    @abstractmethod
    def attachment_data(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """The stored contents of these files, by SHA-256 (unknown ones left out)."""

    @abstractmethod
    def renew_reply_lease(self, message_id: int, lease_until: str) -> None:
        """Push a streaming reply's lease forward (its writer is alive)."""

    @abstractmethod
    def interrupt_stale_replies(self, now: str, legacy_before: str, reason: str) -> int:
        """Mark replies still ``streaming`` whose writer is gone as interrupted.

        A writer is gone when its lease ended before ``now``; a reply from before
        reply leases (none stored) when it was made before ``legacy_before``. A
        process killed mid-reply cannot mark its own reply, so others do; a reply
        whose Discord surface is still usable is left to a bot
        (:meth:`claim_reply_surfaces`). Returns how many.
        """

    # ---- where streaming replies show (a restarted bot finishes them) --------

    @abstractmethod
    def save_reply_surface(
        self, reply_id: int, kind: str, usable_until: str, **values: Any
    ) -> None:
        """Remember where a streaming reply shows (``values``: ``channel_id``,
        ``message_id``, ``application_id``, ``token``), replacing what was saved.

        While ``usable_until`` is ahead, :meth:`interrupt_stale_replies` leaves the
        reply to :meth:`claim_reply_surfaces`.
        """

    @abstractmethod
    def drop_reply_surface(self, reply_id: int) -> None:
        """Forget where a reply shows (its answer is over; a token is kept no longer)."""

    @abstractmethod
    def claim_reply_surfaces(self, now: str, lease_until: str) -> list[ReplySurface]:
        """Claim the surfaces of replies whose writer is gone, each for one caller only.

        A surface still usable at ``now`` of a ``streaming`` reply whose lease ended
        is claimed by taking the reply's lease until ``lease_until`` (``resume``);
        any other surface of a reply no longer written is claimed by deleting it,
        and its reply, if still streaming, is marked interrupted. Two processes
        calling this at once never get the same surface.
        """

    # ---- operations logs ----------------------------------------------------

    @abstractmethod
    def add_api_call(self, **values: Any) -> int:
        """Record one provider request."""

    def finish_reply(
        self, reply_id: int, session_id: int, values: dict[str, Any], call: dict[str, Any]
    ) -> None:
        """A reply's final writes, all or none: its row (lease released), the provider
        request that made it (``add_api_call``'s values) and the session's time.

        One transaction; a backend may write it in fewer round trips.
        """
        with self.write():
            self.update_message(reply_id, lease_until=None, **values)
            self.add_api_call(**call)
            self.touch_session(session_id)

    @abstractmethod
    def api_calls_for(self, message_id: int) -> list[dict[str, Any]]:
        """The provider requests made for one reply, oldest first."""

    @abstractmethod
    def usage_totals(
        self,
        *,
        user_id: int | None = None,
        session_id: int | None = None,
        since: str | None = None,
    ) -> list[UsageTotal]:
        """Tokens of the provider requests made since ``since``, per user and model.

        Only a user's requests with ``user_id``, only a session's with
        ``session_id``; every request made from ``since`` on (all without it). One
        row per (user, provider, model), by user then provider and model.
        """

    @abstractmethod
    def add_feedback(self, **values: Any) -> int | None:
        """Record a user's feedback on a reply; its id, or None for a repeated vote.

        Good / outdated / inaccurate count once per user and reply (a unique index
        refuses the second, from whichever process); every "other" text is kept.
        """

    @abstractmethod
    def feedback_counts(self, message_id: int) -> dict[str, int]:
        """How many votes each feedback kind has on one reply (kinds without any left out)."""

    @abstractmethod
    def list_feedback(self, limit: int = 50) -> list[dict[str, Any]]:
        """Every feedback row on the ``limit`` replies most recently given feedback.

        Rows, newest reply first, then oldest feedback first: ``id``, ``message_id``,
        ``session_id``, ``session_title``, ``answer`` (the reply's first 300
        characters), ``user_id``, ``user_name``, ``kind``, ``text``, ``created``.
        """

    @abstractmethod
    def list_log(
        self,
        table: str,
        *,
        user_id: int | None = None,
        since: str | None = None,
        limit: int = 50,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest rows of one of :data:`LOG_TABLES` (of one user, from ``since`` on,
        of one ``kind`` in :data:`KINDED_LOGS`), newest first, each with the
        ``user_name`` of its ``user_id``."""

    @abstractmethod
    def prune_logs(self, before: str) -> dict[str, int]:
        """Delete the rows of :data:`PRUNED_LOGS` recorded before ``before``, in one
        transaction; how many per table."""

    @abstractmethod
    def add_interaction(self, **values: Any) -> int:
        """Record an interaction or command received by a front end."""

    @abstractmethod
    def update_interaction(self, interaction_id: int, **values: Any) -> None:
        """Change a recorded interaction (its final status or error)."""

    @abstractmethod
    def claim_notice(self, user_id: int, source: str, name: str, since: str, now: str) -> bool:
        """Record the notice ``name`` to a user unless one was recorded after ``since``.

        Of several processes claiming the same notice at once, exactly one gets
        True (and sends it).
        """

    # ---- idempotency keys ---------------------------------------------------

    @abstractmethod
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

    @abstractmethod
    def renew_idempotency_key(self, key_id: int, owner: str, until: str) -> bool:
        """Extend the lease of a key ``owner`` still runs; False when it lost it."""

    @abstractmethod
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

    @abstractmethod
    def release_idempotency_key(self, key_id: int, owner: str) -> None:
        """Forget a running key (its request stored nothing), so a retry runs again."""

    # ---- a user's questions, checked and stored in one step (any instance) --

    @abstractmethod
    def lock_user(self, user_id: int) -> None:
        """Hold the user's lock until the enclosing :meth:`write` block ends.

        Called first in the block that stores a user's question: one such block
        at a time, in any process, so what it checks (:meth:`user_asks`) still
        holds when the question is stored. SQLite's write transaction is already
        exclusive (a no-op there); PostgreSQL locks the user's row.
        """

    @abstractmethod
    def user_asks(self, user_id: int, *, since: str | None, live_after: str | None) -> UserAsks:
        """A user's questions since ``since``, and whether one of them is being answered.

        Being answered: a reply right after one of the user's questions is still
        ``streaming`` under a lease ending after ``live_after`` (a dead writer's
        reply does not count). A part whose time is None is not looked up (0 and
        None, False). One statement.
        """

    # ---- the queue of questions (``queue.*``, ``providers.NAME.max_concurrency``) --

    @abstractmethod
    def enqueue(
        self, user_id: int, provider: str, priority: int, now: str, until: str, size: int | None
    ) -> int | None:
        """Put a question in the queue, leased to its waiter until ``until``.

        One transaction: entries whose lease ended before ``now`` are dropped
        first (their process died); None when ``size`` entries already wait.
        """

    @abstractmethod
    def claim_queue(
        self, provider: str, max_running: int | None, now: str, until: str
    ) -> list[int]:
        """Start the next waiting entries of a provider while it has free slots.

        At most ``max_running`` entries of the provider run at once (None: no
        limit), one per user; of the users whose oldest waiting entry is for this
        provider, priority users first, then the oldest entry. Claimed entries are
        leased until ``until``. One transaction, serialised across instances (on
        PostgreSQL the next entry is taken with ``FOR UPDATE SKIP LOCKED``).
        """

    @abstractmethod
    def queue_states(self, entry_ids: Sequence[int]) -> dict[int, str]:
        """The state (``waiting`` or ``running``) of those entries still queued."""

    @abstractmethod
    def queue_places(self, entry_ids: Sequence[int], now: str) -> dict[int, QueuePlace]:
        """The state of those entries still queued, and where each waiting one stands.

        A waiting entry's position (1 = next) is its rank among the live waiting
        entries of its provider in the order a free slot takes them: priority
        first, then the oldest. One statement.
        """

    @abstractmethod
    def renew_queue(self, entry_ids: Sequence[int], until: str) -> None:
        """Extend the leases of entries this process still waits for or runs."""

    @abstractmethod
    def leave_queue(self, entry_id: int) -> None:
        """Remove an entry (answered, refused or given up): its slot is free."""

    @abstractmethod
    def queue_status(self, now: str) -> QueueStatus:
        """The live entries of the queue: how many wait, run per provider, oldest wait."""

    # ---- live settings (``mschat config set``) --------------------------------

    @abstractmethod
    def settings(self) -> list[SettingRow]:
        """Every setting stored in the database, by key."""

    @abstractmethod
    def set_setting(
        self, key: str, value: str, updated_by: str | None, updated: str | None = None
    ) -> None:
        """Store a setting's value (JSON text), replacing the one it had; changed now,
        or at ``updated`` (a copy keeps the source's time)."""

    @abstractmethod
    def unset_setting(self, key: str) -> bool:
        """Remove a setting from the database; whether it was there."""

    # ---- change feed (live views across instances) --------------------------

    @abstractmethod
    def changes(self, poll_interval: float = 0.5) -> ChangeFeed:
        """A feed of what other instances change in users, sessions and messages.

        Listening has started when this returns: a view that loads after it misses
        nothing. This store's own writes are not reported (as SQLite's
        ``data_version`` ignores its own connection's commits). A backend that can
        push changes does (PostgreSQL's LISTEN/NOTIFY); one that cannot polls
        :meth:`data_version` every ``poll_interval`` seconds (SQLite).
        """

    # ---- whole-history copies (mschat db copy) -------------------------------

    @abstractmethod
    def count_rows(self, table: str) -> int:
        """How many rows one of :data:`TABLES` holds."""

    @abstractmethod
    def insert_rows(
        self, table: str, rows: Sequence[dict[str, Any]], *, replace: bool = False
    ) -> int:
        """Write rows of one of :data:`TABLES` as they are, ids included, in one transaction.

        The rows' keys are the columns, with values as :meth:`read_rows` gives them
        (from either backend). A row whose id is taken is an error, or with
        ``replace`` overwrites that row where they differ. Triggers run as for any
        insert (search index, message counts). Returns how many rows changed.
        """

    @abstractmethod
    def last_id(self, table: str) -> int:
        """The largest id ``table`` ever handed out (a deleted row's too, where it is kept)."""

    @abstractmethod
    def advance_ids(self, table: str, past: int) -> bool:
        """Make the new ids of ``table`` larger than ``past`` (never lowers them).

        Returns whether anything changed. A table whose backend takes the id after
        its largest row (SQLite's logs) has nothing to advance.
        """

    @abstractmethod
    def count_reply_surfaces(self) -> int:
        """How many replies a bot is writing on Discord, or a killed bot left to finish
        (rows of ``reply_surfaces``: a copy leaves them behind)."""

    # ---- tool calls and tool grants (MCP) -------------------------------------

    @abstractmethod
    def add_tool_call(self, **values: Any) -> int:
        """Record one tool call of a reply: ``message_id``, ``call_id``, ``server``,
        ``tool``, ``arguments`` (the model's JSON text), ``result`` (what the model
        got), ``status``, ``started``, ``finished``. Removed with its message."""

    @abstractmethod
    def tool_calls(self, message_ids: Sequence[int]) -> list[ToolCallRecord]:
        """The tool calls of these replies, in the order they were made."""

    @abstractmethod
    def tool_grants(self, user_id: int) -> list[str]:
        """The tools granted to a user (``SERVER/TOOL`` or ``SERVER/*``), sorted."""

    @abstractmethod
    def change_tool_grants(
        self, user_id: int, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> list[str]:
        """Grant ``add`` and revoke ``remove`` in one transaction (granting twice is
        once); the user's grants after it."""


#: the surfaces a claim looks at: of replies no longer written (``%s``: now)
SURFACES_TO_CLAIM = (
    "SELECT s.reply_id, s.kind, s.channel_id, s.message_id, s.application_id, s.token, "
    "s.usable_until, m.status FROM reply_surfaces s JOIN messages m ON m.id = s.reply_id "
    "WHERE m.status <> 'streaming' OR m.lease_until < %s ORDER BY s.reply_id"
)
#: why a reply whose surface could no longer be edited was given up
SURFACE_GONE = "interrupted: the bot restarted too late to finish this reply"
#: stale replies :meth:`Store.interrupt_stale_replies` leaves to a bot that may finish them
HELD_FOR_A_BOT = "id NOT IN (SELECT reply_id FROM reply_surfaces WHERE usable_until > %s)"


class ReplySurface(NamedTuple):
    """Where a reply shows on Discord, as claimed by :meth:`Store.claim_reply_surfaces`."""

    reply_id: int
    kind: str  # "message" (a channel message) or "interaction" (its original response)
    channel_id: str | None
    message_id: str | None
    application_id: str | None
    token: str | None
    usable_until: str
    #: the reply's status once claimed: "streaming" to finish, else what it ended as
    status: str
    #: whether to answer again into the surface (else: say it was interrupted)
    resume: bool


class ToolCallRecord(NamedTuple):
    """One stored tool call of a reply (:meth:`Store.tool_calls`)."""

    id: int
    message_id: int
    call_id: str
    server: str
    tool: str
    arguments: str
    result: str
    status: str
    started: str
    finished: str


#: the columns of :class:`ToolCallRecord`, as both backends select them
TOOL_CALL_COLUMNS = ", ".join(ToolCallRecord._fields)


class SettingRow(NamedTuple):
    """One row of the ``settings`` table (:meth:`Store.settings`)."""

    key: str
    #: JSON text
    value: str
    updated: str
    updated_by: str | None


class QueueStatus(NamedTuple):
    """What :meth:`Store.queue_status` found in the queue."""

    #: entries waiting for a slot
    waiting: int
    #: running entries by provider
    running: dict[str, int]
    #: when the oldest waiting entry was queued (None: none waits)
    oldest: str | None


def queue_status(rows: Sequence[tuple[str, str, int, str]]) -> QueueStatus:
    """A :class:`QueueStatus` of ``(state, provider, count, oldest created)`` rows."""
    waiting = sum(count for state, _, count, _ in rows if state == "waiting")
    running = {provider: count for state, provider, count, _ in rows if state == "running"}
    created = [oldest for state, _, _, oldest in rows if state == "waiting" and oldest]
    return QueueStatus(waiting, running, min(created) if created else None)


class QueuePlace(NamedTuple):
    """One entry of :meth:`Store.queue_places`."""

    #: ``waiting`` or ``running``
    state: str
    #: 1 = the next its provider's free slot takes; 0 while running
    position: int


def queue_places_query(count: int) -> str:
    """The statement of :meth:`Store.queue_places` for ``count`` entries (``%s`` marks).

    Its parameters: the ids, now, the ids, the ids.
    """
    marks = ", ".join("%s" for _ in range(count))
    return (
        "SELECT id, state, position FROM (SELECT id, state, row_number() OVER "
        "(PARTITION BY provider, state ORDER BY priority DESC, id) AS position FROM queue "
        f"WHERE provider IN (SELECT provider FROM queue WHERE id IN ({marks})) "
        f"AND (lease_until >= %s OR id IN ({marks}))) ranked WHERE id IN ({marks})"
    )


def queue_places(rows: Sequence[tuple[int, str, int]]) -> dict[int, QueuePlace]:
    """The :meth:`Store.queue_places` of ``(id, state, rank)`` rows."""
    return {
        entry: QueuePlace(state, int(rank) if state == "waiting" else 0)
        for entry, state, rank in rows
    }


class UserAsks(NamedTuple):
    """What :meth:`Store.user_asks` found about a user's questions."""

    #: questions asked since the time given
    questions: int
    #: when the oldest of them was asked
    oldest: str | None
    #: whether a reply to one of the user's questions is still being written
    answering: bool


class UsageTotal(NamedTuple):
    """The provider requests of one user and one model (:meth:`Store.usage_totals`)."""

    user_id: int | None
    provider: str | None
    model: str | None
    #: how many requests
    calls: int
    #: their prompt and completion tokens, as the providers reported them
    tokens_in: int
    tokens_out: int
    #: requests that got an answer (whole or in part) but reported no tokens
    unmetered: int


def usage_query(mark: str, **where: Any) -> tuple[str, list[Any]]:
    """The SQL of :meth:`Store.usage_totals` with ``mark`` as the placeholder, and its
    parameters (``where``: ``user_id``, ``session_id``, ``since``; None ones ignored).

    A failed request without tokens cost nothing (the provider refused it); one that
    answered, or was cut off, without reporting tokens has an unknown cost.
    """
    clauses, params = [], []
    tests = {"user_id": "user_id =", "session_id": "session_id =", "since": "started >="}
    for name, test in tests.items():
        if where.get(name) is not None:
            clauses.append(f"{test} {mark}")
            params.append(where[name])
    sql = (
        "SELECT user_id, provider, model, count(*), coalesce(sum(prompt_tokens), 0), "
        "coalesce(sum(completion_tokens), 0), "
        "sum(CASE WHEN prompt_tokens IS NULL AND completion_tokens IS NULL "
        "AND status IN ('ok', 'interrupted') THEN 1 ELSE 0 END) "
        f"FROM api_calls {'WHERE ' + ' AND '.join(clauses) if clauses else ''} "
        "GROUP BY user_id, provider, model ORDER BY user_id, provider, model"
    )
    return sql, params


def usage_rows(rows: Sequence[Sequence[Any]]) -> list[UsageTotal]:
    """:class:`UsageTotal` rows from the result of :func:`usage_query` (either backend)."""
    return [
        UsageTotal(
            None if row[0] is None else int(row[0]),
            row[1],
            row[2],
            int(row[3]),
            int(row[4]),
            int(row[5]),
            int(row[6] or 0),
        )
        for row in rows
    ]


# ---- change feed -----------------------------------------------------------------


def listed_hashes(rows: Sequence[Sequence[Any]]) -> set[str]:
    """The SHA-256 of every file listed by these ``messages.attachments`` values."""
    from mschat.store.records import attachments_of

    return {info.sha256 for (value,) in rows for info in attachments_of(value)}


@dataclass(frozen=True)
class Change:
    """A notice that another instance changed something.

    ``table`` is ``"users"``, ``"sessions"``, ``"messages"`` or ``"settings"``
    (live settings), with the session concerned when known: a session's row,
    or a session's messages. A notice without a table means anything may have
    changed (a poll saw the database move, or notices may have been missed while
    a connection was lost): a view refreshes everything.
    """

    table: str | None = None
    session_id: int | None = None

    def concerns_session(self, session_id: int) -> bool:
        """Whether a view of this session (its row or its messages) may be out of date."""
        return self.table is None or (
            self.table in ("sessions", "messages") and self.session_id in (None, session_id)
        )

    @property
    def concerns_session_list(self) -> bool:
        """Whether a list of sessions (titles, order, creators' names) may be out of date."""
        return self.table in (None, "sessions", "users")


class ChangeFeed(ABC):
    """Notices of other instances' changes (:meth:`Store.changes`).

    One thread waits on it; any thread may close it. It never raises: a lost
    connection is re-established by the feed itself, which then reports
    ``[Change()]``, since notices may have been missed meanwhile.
    """

    #: whether the database pushes the notices (False: the feed polls)
    pushed: bool = False

    def __init__(self) -> None:
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[Change]:
        """Block until notices come and return them; ``[]`` after ``timeout`` s or once closed."""

    def close(self) -> None:
        """Stop listening; a :meth:`wait` on another thread returns at once. Idempotent."""
        self._closed.set()
