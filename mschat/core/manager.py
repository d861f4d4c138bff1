"""SessionManager: the only place the rules of users, statuses and sessions live.

Asking (``ask``, ``chat``, ``regenerate``) checks who may ask where, then hands
the question to the answer pipeline (``mschat.core.answer``).

Replies left ``streaming`` by a process that died are marked interrupted by
every process at start (``build_services``). A long-running front end (API
server, Discord bot, TUI) also calls :meth:`SessionManager.watch_replies` once
its event loop runs, so such replies are noticed within about one lease time;
:meth:`SessionManager.aclose` stops that watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import sqlite3
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mschat.core import eligibility
from mschat.core.answer import (
    FLUSH_INTERVAL,
    LEASE,
    Answerer,
    NewSession,
    WriterSettings,
    claim_surfaces,
    recover_replies,
)
from mschat.core.answer.queue import QueueState, Ticket
from mschat.core.answer.turns import stamp
from mschat.core.attachments import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_COUNT,
    Limits,
    Prepared,
    check_count,
    prepare_all,
    save_files,
)
from mschat.core.errors import (
    DatabaseError,
    InvalidInput,
    MschatError,
    NotFound,
    PermissionDenied,
)
from mschat.core.events import Event, Started
from mschat.core.idempotency import IdempotencyKeys
from mschat.core.models import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    AttachmentInfo,
    Message,
    MessageStatus,
    Origin,
    SearchHit,
    Session,
    Status,
    User,
    UserKind,
    utcnow,
)
from mschat.core.rules import (
    ADMIN_ONLY_SETTINGS,
    DEFAULT_STATUS,
    INT_LIMIT,
    USER_SETTINGS,
    validate_max_tokens,
    validate_status,
    validate_temperature,
    validate_whole,
)
from mschat.core.titles import DEFAULT_TITLE, clean_title, make_title
from mschat.providers.base import ModelInfo
from mschat.providers.registry import Registry, ResolvedModel, ServerNeeded
from mschat.store.contract import (
    KINDED_LOGS,
    LOG_TABLES,
    Change,
    ReplySurface,
    Store,
    ToolCallRecord,
)

if TYPE_CHECKING:
    # costs, feedback and export are imported where used: a cold ``mschat ask``
    # (budget 0.3 s) needs none of them, and their dataclasses cost milliseconds
    from mschat.core.costs import Cost, Prices, Spending
    from mschat.core.feedback import AnswerFeedback

if TYPE_CHECKING:
    from mschat.core.tools.loop import Approve
    from mschat.core.tools.toolbox import Toolbox

T = TypeVar("T")

#: why a reply whose writer died was not answered again: newer messages follow it
RESUME_TOO_LATE = "interrupted: the session went on before this reply could be finished"
#: how often a server prunes the operations logs (``logs.retention_days``)
PRUNE_EVERY = timedelta(days=1)


class SessionManager:
    """Users, sessions and asks over a Store and a provider Registry.

    Every method is a coroutine; store calls run on worker threads, as many as
    the store supports (one for SQLite), so event loops (TUI, bot, API) never
    block on the database.
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        defaults: dict[str, Any] | None = None,
        local_user_name: str | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        lease: timedelta = LEASE,
    ) -> None:
        self.store = store
        self.registry = registry
        self.defaults = {
            "max_tokens": DEFAULT_MAX_TOKENS,
            "temperature": DEFAULT_TEMPERATURE,
            "system_msg": None,
            "discord_status": DEFAULT_STATUS[UserKind.DISCORD].value,
            "one_question_at_a_time": False,
            "rate_limit": None,
            **(defaults or {}),
        }
        self.local_user_name = local_user_name
        self._executor = ThreadPoolExecutor(
            max_workers=store.threads, thread_name_prefix="mschat-store"
        )
        self._answerer = Answerer(
            store, self._run, registry, WriterSettings(flush_interval=flush_interval, lease=lease)
        )
        #: answering a retried request once (the API's Idempotency-Key)
        self.idempotency = IdempotencyKeys(store, self._run, self._answerer.turns.owner)
        self._watch: asyncio.Task[None] | None = None
        self._prices: Prices | None = None
        self._pruning: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SessionManager {self.store.url}>"

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def aclose(self) -> None:
        """Stop the reply watch and log pruning; close providers, store thread, database."""
        for task in (self._watch, self._pruning):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watch = self._pruning = None
        await self.registry.aclose()
        await self._run(self.store.close)
        self._executor.shutdown(wait=True)

    # ---- users --------------------------------------------------------------

    async def user(self, kind: str, external_id: str, name: str | None = None) -> User:
        """Get or create the user of this kind and external id."""
        kind = UserKind(kind).value
        external_id = str(external_id)
        user = await self._run(self.store.find_user, kind, external_id)
        if user is None:
            user = await self._run(
                self.store.create_user,
                kind=kind,
                external_id=external_id,
                name=name or external_id,
                status=self._new_user_status(UserKind(kind)),
                max_tokens=self.defaults["max_tokens"],
                temperature=self.defaults["temperature"],
                system_msg=self.defaults["system_msg"],
                rate_limit=self.defaults["rate_limit"],
                admin=int(kind == UserKind.LOCAL),
            )
        elif name and name != user.name:
            user = await self._run(self.store.update_user, user.id, name=name)
        return user

    async def find_existing_user(self, kind: str, external_id: str) -> User | None:
        """The user of this kind and external id, if there is one (never creates it)."""
        return await self._run(self.store.find_user, UserKind(kind).value, str(external_id))

    def _new_user_status(self, kind: UserKind) -> str:
        """New Discord members get the configured status; other kinds their default."""
        if kind == UserKind.DISCORD:
            return validate_status(self.defaults["discord_status"])
        return DEFAULT_STATUS[kind].value

    async def local_user(self) -> User:
        """The person at the terminal (an admin of the local store)."""
        name = self.local_user_name
        if not name:
            try:
                name = getpass.getuser()
            except Exception:
                name = "local"
        return await self.user(UserKind.LOCAL, name, name)

    async def get_user(self, user_id: int) -> User:
        """A user by id."""
        return await self._run(self.store.get_user, user_id)

    async def find_user(self, ref: str) -> User:
        """A user by id, name or external id (error when none or several match)."""
        users = await self._run(self.store.find_users, str(ref))
        if not users:
            raise NotFound(f"no user {ref!r}", hint="list users with `mschat users list`")
        if len(users) > 1:
            labels = ", ".join(f"{u.id} ({u.label})" for u in users)
            raise InvalidInput(f"{ref!r} matches several users: {labels}; use the id")
        return users[0]

    async def list_users(self, kind: str | None = None, limit: int = 1000) -> list[User]:
        """Users, most recently active first."""
        return await self._run(self.store.list_users, kind, limit)

    async def update_user(self, actor: User, user_id: int, **changes: Any) -> User:
        """Change settings of a user (oneself, or anyone for an admin); bumps modified."""
        if actor.id != user_id and not actor.admin:
            raise PermissionDenied("only an admin may change another user's settings")
        values: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in USER_SETTINGS:
                raise InvalidInput(
                    f"unknown user setting {key!r}; expected one of {', '.join(USER_SETTINGS)}"
                )
            if key in ADMIN_ONLY_SETTINGS and not actor.admin:
                raise PermissionDenied(f"only an admin may change {key}")
            values[key] = await self._validate_setting(key, value)
        if not values:
            return await self.get_user(user_id)
        values["modified"] = utcnow()
        return await self._run(self.store.update_user, user_id, **values)

    async def _validate_setting(self, key: str, value: Any) -> Any:
        if key == "temperature":
            return validate_temperature(value)
        if key == "max_tokens":
            return validate_max_tokens(value)
        if key == "status":
            return validate_status(value)
        if key in ("show_public", "attach", "ignored", "admin"):
            if isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            return int(bool(value))
        if key == "model":
            if value in (None, ""):
                return None
            return (await self.resolve_model(str(value))).full_name
        if key == "system_msg":
            return str(value) if value not in (None, "") else None
        if key == "name":
            name = clean_title(str(value), 100)
            if not name:
                raise InvalidInput("name must not be empty")
            return name
        if key == "rate_limit":  # none: the default; 0 blocks
            return None if value in (None, "") else validate_whole(key, value, 0)
        if key == "priority":  # higher is answered first; below 0, after everyone
            return validate_whole(key, 0 if value in (None, "") else value, -INT_LIMIT)
        return value

    # ---- tools (MCP) --------------------------------------------------------

    def use_tools(self, toolbox: Toolbox | None) -> None:
        """Offer these MCP tools to models that take them (``build_services`` does)."""
        self._answerer.tools = toolbox

    @property
    def tools(self) -> Toolbox | None:
        """The MCP tools in use, if any."""
        return self._answerer.tools

    async def tool_grants(self, user: User) -> list[str]:
        """The tools granted to a user (``SERVER/TOOL``)."""
        return await self._run(self.store.tool_grants, user.id)

    async def change_tool_grants(
        self, actor: User, user_id: int, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> list[str]:
        """Grant or revoke tools to a Discord or API user (admin only); the grants after."""
        from mschat.core.tools.policy import check_grant

        if not actor.admin:
            raise PermissionDenied("only an admin may grant tools")
        try:
            added = [check_grant(t) for t in add]
            removed = [check_grant(t) for t in remove]
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        target = await self.get_user(user_id)
        if target.kind == "local" and added:
            raise InvalidInput(
                "the terminal user needs no grants: list tools in [mcp.servers.NAME] allow"
            )
        return await self._run(self.store.change_tool_grants, user_id, added, removed)

    # ---- models -------------------------------------------------------------

    async def resolve_model(self, name: str | None) -> ResolvedModel:
        """Resolve a model name or alias (errors say how to list models).

        A server's model list, when it must be fetched, is fetched off the event loop.
        """
        return await self.registry.resolve_async(name)

    def known_model(self, name: str | None) -> ResolvedModel | None:
        """What ``name`` resolves to from the lists already known; None if unknown or unsure.

        Never asks a server: for display, never for deciding what may be used.
        """
        try:
            return self.registry.resolve(name, ask=False)
        except (MschatError, ServerNeeded):
            return None

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Every usable model, once: the one list behind every model picker.

        ``refresh`` asks the servers again instead of using a cached list.
        """
        return await self.registry.list_models(refresh=refresh)

    # ---- sessions -----------------------------------------------------------

    can_see = staticmethod(eligibility.can_see)
    can_use = staticmethod(eligibility.can_use)
    can_edit = staticmethod(eligibility.can_edit)

    async def usable_session(self, user: User, session_id: int) -> Session:
        """A session the user may ask in or attach to, else PermissionDenied."""
        session = await self.get_session(user, session_id)
        if not self.can_use(user, session):
            raise PermissionDenied(f"session {session_id} is private to its creator")
        return session

    async def get_session(self, user: User, session_id: int) -> Session:
        """A session the user may see (a private one of another user is NotFound)."""
        session = await self._run(self.store.get_session, int(session_id))
        if not self.can_see(user, session):
            raise PermissionDenied(f"session {session_id} is private to its creator")
        return session

    async def find_session(self, user: User, ref: str | int) -> Session:
        """A visible session by id or exact title; a title several share is an error."""
        text = str(ref).strip()
        if text.isdigit():
            return await self.get_session(user, int(text))
        matches = await self._run(self.store.find_sessions_by_title, text)
        visible = [s for s in matches if self.can_see(user, s)]
        if not visible:
            raise NotFound(f"no session {text!r}", hint="list sessions with `mschat sessions list`")
        if len(visible) > 1:
            ids = [str(s.id) for s in sorted(visible, key=lambda s: s.id)]
            listed = f"{', '.join(ids[:-1])} and {ids[-1]}"
            raise InvalidInput(f'"{text}" matches sessions {listed}; use an id')
        return visible[0]

    async def _editable(self, user: User, session_id: int) -> Session:
        session = await self.get_session(user, session_id)
        if not self.can_edit(user, session):
            raise PermissionDenied(
                f"only the creator of session {session_id} ({session.creator_name}) may change it"
            )
        return session

    async def create_session(
        self,
        user: User,
        *,
        origin: str = Origin.TERMINAL,
        title: str | None = None,
        model: str | None = None,
        system_msg: str | None = None,
        public: bool | None = None,
    ) -> Session:
        """A new session; public when created in a guild channel, else private."""
        resolved = await self.resolve_model(model or user.model)
        values = self._session_values(
            user, origin=origin, title=title, model=resolved, system_msg=system_msg, public=public
        )
        return await self._run(self.store.create_session, **values)

    @staticmethod
    def _session_values(
        user: User,
        *,
        origin: str,
        title: str | None,
        model: ResolvedModel,
        system_msg: str | None,
        public: bool | None = None,
    ) -> dict[str, Any]:
        """The columns of a new session of ``user``."""
        origin_value = Origin(origin)
        return {
            "creator_id": user.id,
            "title": clean_title(title) if title else DEFAULT_TITLE,
            "model": model.full_name,
            "system_msg": system_msg if system_msg is not None else user.system_msg,
            "public": int(origin_value.starts_public if public is None else public),
            "origin": origin_value.value,
        }

    async def list_sessions(
        self,
        user: User,
        *,
        include_public: bool | None = None,
        everyone: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Session]:
        """Own sessions, plus others' public ones when show_public (or asked)."""
        if everyone:
            if not user.admin:
                raise PermissionDenied("only an admin may list everyone's sessions")
            return await self._run(
                self.store.list_sessions, None, include_hidden=True, limit=limit, offset=offset
            )
        public = user.show_public if include_public is None else include_public
        return await self._run(
            self.store.list_sessions, user.id, include_public=public, limit=limit, offset=offset
        )

    async def count_sessions(self, user: User, *, include_public: bool | None = None) -> int:
        """How many sessions ``list_sessions`` pages through."""
        public = user.show_public if include_public is None else include_public
        return await self._run(self.store.count_sessions, user.id, include_public=public)

    async def last_session(self, user: User) -> Session | None:
        """The session the user spoke in most recently (``ask --continue``)."""
        return await self._run(self.store.last_session_of, user.id)

    async def switch_session(self, user: User, session_id: int) -> User:
        """Make an own or public session current and the user active (attach)."""
        session = await self.usable_session(user, session_id)
        return await self._run(
            self.store.update_user,
            user.id,
            current_session_id=session.id,
            status=Status.ACTIVE.value,
            modified=utcnow(),
        )

    async def rename_session(self, user: User, session_id: int, title: str) -> Session:
        """Rename a session (creator only)."""
        title = clean_title(title)
        if not title:
            raise InvalidInput("a session title must not be empty")
        await self._editable(user, session_id)
        return await self._run(
            self.store.update_session, session_id, title=title, modified=utcnow()
        )

    async def set_session_system(self, user: User, session_id: int, text: str | None) -> Session:
        """Set or clear a session's system message (creator only)."""
        await self._editable(user, session_id)
        return await self._run(
            self.store.update_session, session_id, system_msg=text or None, modified=utcnow()
        )

    async def set_session_model(self, user: User, session_id: int, model: str) -> Session:
        """Change the model of a session's next turns (creator only)."""
        resolved = await self.resolve_model(model)
        await self._editable(user, session_id)
        return await self._run(
            self.store.update_session, session_id, model=resolved.full_name, modified=utcnow()
        )

    async def set_session_public(self, user: User, session_id: int, public: bool) -> Session:
        """Make a session public or private (creator only)."""
        await self._editable(user, session_id)
        return await self._run(
            self.store.update_session, session_id, public=int(public), modified=utcnow()
        )

    async def set_session_hidden(self, user: User, session_id: int, hidden: bool) -> Session:
        """Hide a session from listings (creator or admin)."""
        await self._editable(user, session_id)
        return await self._run(
            self.store.update_session, session_id, hidden=int(hidden), modified=utcnow()
        )

    async def remove_session(self, user: User, session_id: int) -> None:
        """Delete a session and its messages (creator only)."""
        await self._editable(user, session_id)
        await self._run(self.store.delete_session, session_id)

    async def clear_sessions(self, user: User) -> int:
        """Delete every session the user created; returns how many."""
        return await self._run(self.store.delete_user_sessions, user.id)

    async def messages(
        self,
        user: User,
        session_id: int,
        *,
        limit: int | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[Message]:
        """A visible session's messages (the last ``limit`` ones, paging back)."""
        await self.get_session(user, session_id)
        return await self._run(
            self.store.messages, session_id, limit=limit, before_id=before_id, after_id=after_id
        )

    async def search(
        self, user: User, text: str, *, limit: int = 20, offset: int = 0, everyone: bool = False
    ) -> list[SearchHit]:
        """Full-text search over the messages a user may see, newest first."""
        if not text.strip():
            raise InvalidInput("the search text is empty")
        user_id = None if (everyone and user.admin) else user.id
        return await self._run(
            self.store.search,
            text,
            user_id=user_id,
            include_public=True,
            limit=limit,
            offset=offset,
        )

    async def export_session(self, user: User, session_id: int, fmt: str = "markdown") -> str:
        """The whole session as Markdown or JSON text."""
        from mschat.core.export import export_json, render_markdown  # not on the ask path

        session = await self.get_session(user, session_id)
        messages = await self._run(self.store.messages, session_id)
        if fmt == "json":
            hashes = [info.sha256 for m in messages for info in m.attachments]
            files = await self._run(self.store.attachment_data, hashes) if hashes else {}
            replies = [m.id for m in messages if m.role == "assistant"]
            calls: dict[int, list[dict[str, Any]]] = {}
            for call in await self._run(self.store.tool_calls, replies):
                calls.setdefault(call.message_id, []).append(call._asdict())
            document = export_json(session, messages, files)
            for row in document["messages"]:
                if row["id"] in calls:
                    row["tool_calls"] = calls[row["id"]]
            return json.dumps(document, ensure_ascii=False, indent=2)
        if fmt not in ("markdown", "md"):
            raise InvalidInput(f"export format must be markdown or json, got {fmt!r}")
        return render_markdown(session, messages)

    # ---- front-end support: references, logs, feedback, live updates --------

    async def set_external_ref(self, message_id: int, ref: str) -> None:
        """Attach a front end's id (e.g. the Discord reply's message id) to a message."""
        await self._run(self.store.update_message, message_id, external_ref=str(ref))

    async def find_by_ref(self, user: User, ref: str) -> tuple[Session, Message]:
        """The visible session and message carrying a front end's reference."""
        message = await self._run(self.store.find_message_by_ref, str(ref))
        if message is None:
            raise NotFound("that message does not belong to any session")
        return await self.get_session(user, message.session_id), message

    async def attachment(
        self, user: User, message_id: int, index: int
    ) -> tuple[AttachmentInfo, bytes]:
        """A file of a message in a session the user may see: what it is, and its content."""
        message = await self._run(self.store.get_message, message_id)
        await self.get_session(user, message.session_id)
        if not 0 <= index < len(message.attachments):
            raise NotFound(f"message {message_id} has no file {index + 1}")
        info = message.attachments[index]
        found = await self._run(self.store.attachment_data, [info.sha256])
        if info.sha256 not in found:
            raise NotFound(f"the content of {info.name} is no longer stored")
        return info, found[info.sha256]

    async def tool_calls_of(
        self, user: User, session_id: int, message_ids: Sequence[int]
    ) -> dict[int, list[ToolCallRecord]]:
        """The stored tool calls of these replies of a session the user may see, by reply."""
        await self.get_session(user, session_id)
        if not message_ids:
            return {}
        calls: dict[int, list[ToolCallRecord]] = {}
        for call in await self._run(self.store.tool_calls, list(message_ids)):
            calls.setdefault(call.message_id, []).append(call)
        return calls

    async def log_interaction(self, **values: Any) -> int:
        """Record an interaction or command a front end received; returns its id."""
        return await self._run(self.store.add_interaction, **values)

    async def finish_interaction(
        self, interaction_id: int, status: str, error: str | None = None
    ) -> None:
        """Record how an interaction ended."""
        await self._run(self.store.update_interaction, interaction_id, status=status, error=error)

    async def add_feedback(
        self, user: User, message_id: int, kind: str, text: str | None = None
    ) -> bool:
        """Record a user's feedback (good / outdated / inaccurate / other) on a reply.

        False when it does not count again: the user already gave this kind (each of
        good, outdated and inaccurate counts once per user; every "other" text counts).
        """
        from mschat.core.feedback import KINDS  # not on the ask path (see imports)

        if kind not in KINDS:
            raise InvalidInput("feedback must be good, outdated, inaccurate or other")
        message = await self._run(self.store.get_message, message_id)
        await self.get_session(user, message.session_id)
        added = await self._run(
            self.store.add_feedback, message_id=message_id, user_id=user.id, kind=kind, text=text
        )
        return added is not None

    async def feedback_counts(self, message_id: int) -> dict[str, int]:
        """Votes per feedback kind on a reply, as the database has them now."""
        return await self._run(self.store.feedback_counts, message_id)

    async def list_feedback(self, user: User, limit: int = 50) -> list[AnswerFeedback]:
        """Admin: the answers most recently given feedback, each with all of it."""
        if not user.admin:
            raise PermissionDenied("only an admin may read everyone's feedback")
        from mschat.core.feedback import group_feedback  # not on the ask path (see imports)

        return group_feedback(await self._run(self.store.list_feedback, limit))

    async def list_log(
        self,
        actor: User,
        table: str,
        *,
        user_id: int | None = None,
        since: str | None = None,
        limit: int = 50,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """Admin: the newest rows of an operations log (interactions, api_calls, feedback),
        of one ``kind`` if given (interactions and feedback)."""
        if not actor.admin:
            raise PermissionDenied("only an admin may read the logs")
        if table not in LOG_TABLES:
            raise InvalidInput(f"no log named {table!r}")
        if limit < 1:
            raise InvalidInput("the limit must be at least 1")
        if kind is not None and table not in KINDED_LOGS:
            raise InvalidInput(f"the {table} log has no kinds")
        return await self._run(
            self.store.list_log, table, user_id=user_id, since=since, limit=limit, kind=kind
        )

    async def prune_logs(self, retention_days: int) -> dict[str, int]:
        """Delete interactions and API calls older than ``retention_days`` (0 keeps all)."""
        if retention_days <= 0:
            return {}
        before = datetime.now(UTC) - timedelta(days=retention_days)
        return await self._run(self.store.prune_logs, before.isoformat(timespec="microseconds"))

    def keep_logs_pruned(self, retention_days: int, every: timedelta = PRUNE_EVERY) -> None:
        """Prune the logs now and then ``every`` (a day) until :meth:`aclose`.

        For the servers; call it from their running event loop. Calling it again
        while it runs does nothing; with ``retention_days`` 0 nothing is pruned.
        """
        if retention_days > 0 and (self._pruning is None or self._pruning.done()):
            self._pruning = asyncio.get_running_loop().create_task(
                self._keep_logs_pruned(retention_days, every.total_seconds())
            )

    async def _keep_logs_pruned(self, retention_days: int, period: float) -> None:
        while True:
            # a locked or unwritable database now is no reason to stop
            with contextlib.suppress(sqlite3.Error, DatabaseError):
                await self.prune_logs(retention_days)
            await asyncio.sleep(period)

    @property
    def prices(self) -> Prices:
        """The price table in effect: built-in list prices under the configured ones."""
        if self._prices is None:
            from mschat.core.costs import Prices  # not on the ask path (see imports)

            self._prices = Prices(getattr(self.registry.config, "prices", None))
        return self._prices

    async def _files(self, given: Sequence[tuple[str, bytes] | str]) -> list[Prepared]:
        """The files of a question checked (URLs fetched first, within the limits)."""
        limits = self.attachment_limits
        check_count(len(given), limits)
        files = []
        for item in given:
            if isinstance(item, str):
                from mschat.core.fetch import fetch_file

                private = bool(self._section("attachments").get("fetch_private"))
                item = await fetch_file(item, max_bytes=limits.max_bytes, allow_private=private)
            files.append(item)
        return prepare_all(files, limits)

    def _section(self, name: str) -> dict[str, Any]:
        """One section of the configuration in effect (empty for a registry without one)."""
        config = getattr(self.registry, "config", None)
        return dict(getattr(config, "sections", {}).get(name, {}))

    @property
    def attachment_limits(self) -> Limits:
        """How many files a question may carry and how big each (``[attachments]``)."""
        given = self._section("attachments")
        return Limits(
            max_bytes=given.get("max_bytes") or DEFAULT_MAX_BYTES,
            max_count=given.get("max_count") or DEFAULT_MAX_COUNT,
        )

    @property
    def currency(self) -> str:
        """The currency of the price table (``general.currency``)."""
        return str(self._section("general").get("currency") or "USD")

    async def spending(
        self,
        actor: User,
        *,
        user_id: int | None = None,
        session_id: int | None = None,
        since: str | None = None,
    ) -> Spending:
        """What a user's (or a session's) answers cost since ``since`` (all time without).

        A user's own costs are theirs to see, anyone's an admin's; a session's, of
        any session the actor may see.
        """
        if session_id is not None:
            await self.get_session(actor, session_id)
        elif user_id != actor.id and not actor.admin:  # another's, or everyone's
            raise PermissionDenied("only an admin sees what other users' answers cost")
        totals = await self._run(
            self.store.usage_totals, user_id=user_id, session_id=session_id, since=since
        )
        from mschat.core.costs import Spending  # not on the ask path (see imports)

        return Spending(totals, self.prices.of_usage(totals), self.currency)

    async def spending_per_user(self, actor: User, *, since: str | None = None) -> dict[int, Cost]:
        """What each user's answers cost since ``since`` (admin only; users without any
        provider request are left out)."""
        if not actor.admin:
            raise PermissionDenied("only an admin sees what other users' answers cost")
        totals = await self._run(self.store.usage_totals, since=since)
        costs = self.prices.per_user(totals)
        return {user_id: cost for user_id, cost in costs.items() if user_id is not None}

    async def queue_status(self, actor: User) -> QueueState:
        """Admin: whether answering is paused, and what waits and runs in the whole queue."""
        if not actor.admin:
            raise PermissionDenied("only an admin may see the queue")
        status = await self._run(self.store.queue_status, stamp())
        section = self._section("queue")
        oldest = None
        if status.oldest is not None:
            since = datetime.fromisoformat(status.oldest)
            oldest = max(0.0, (datetime.now(UTC) - since).total_seconds())
        return QueueState(
            paused=bool(section.get("paused")),
            when_paused=str(section.get("when_paused") or "reject"),
            waiting=status.waiting,
            running=dict(status.running),
            oldest_wait=oldest,
        )

    async def data_version(self) -> int:
        """Changes whenever another process commits to the database (cheap polling)."""
        return await self._run(self.store.data_version)

    async def messages_since(self, user: User, session_id: int, after_id: int) -> list[Message]:
        """Messages newer than ``after_id`` plus those still streaming (live views)."""
        await self.get_session(user, session_id)
        return await self._run(self.store.messages_changed_since, session_id, after_id)

    # ---- routing plain messages ---------------------------------------------

    async def route(self, user: User) -> tuple[Session | None, str | None]:
        """Where a plain message goes under the user's status; no session means a new one.

        The second value says why the current session was left ("removed" or
        "private"), when it was. Raises PermissionDenied for ``disabled`` users.
        """
        eligibility.check_may_route(user)
        if user.status == Status.ACTIVE and user.current_session_id is not None:
            try:
                return await self.usable_session(user, user.current_session_id), None
            except NotFound:
                return None, "removed"
            except PermissionDenied:
                return None, "private"
        return None, None

    # ---- asking -------------------------------------------------------------

    async def recover_replies(self) -> int:
        """Mark replies whose writer is gone (its lease expired) as interrupted.

        One query on the partial index of streaming replies; returns how many.
        """
        return await self._run(recover_replies, self.store)

    def watch_replies(self) -> None:
        """Run :meth:`recover_replies` every half lease until :meth:`aclose`.

        For long-running front ends; call it from their running event loop.
        Calling it again while the watch runs does nothing.
        """
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watch_replies())

    @property
    def reply_lease(self) -> timedelta:
        """How long a reply's writer may be silent before it counts as gone."""
        return self._answerer.settings.lease

    @property
    def watching_replies(self) -> bool:
        """Whether :meth:`watch_replies` runs (the long-running front ends start it)."""
        return self._watch is not None and not self._watch.done()

    async def _watch_replies(self) -> None:
        period = self._answerer.settings.lease.total_seconds() / 2
        while True:
            await asyncio.sleep(period)
            # a locked or unwritable database now is no reason to stop watching
            with contextlib.suppress(sqlite3.Error, DatabaseError):
                await self.recover_replies()

    async def claim_reply_surfaces(self) -> list[ReplySurface]:
        """Claim the Discord surfaces of replies whose writer is gone, for this process.

        Each comes with ``resume`` (answer it again into the surface with
        :meth:`resume_reply`) or not (say there it was interrupted, already so
        marked). Two processes never get the same one.
        """
        return await self._run(claim_surfaces, self.store, self._answerer.settings.lease)

    async def save_reply_surface(
        self, reply_id: int, kind: str, usable_until: str, **values: Any
    ) -> None:
        """Remember where a streaming reply shows, so a restarted bot can finish it."""
        await self._run(self.store.save_reply_surface, reply_id, kind, usable_until, **values)

    async def drop_reply_surface(self, reply_id: int) -> None:
        """Forget where a reply shows (it is over)."""
        await self._run(self.store.drop_reply_surface, reply_id)

    async def resume_reply(self, reply_id: int) -> AsyncIterator[Event]:
        """Answer again, from the stored context, a reply whose writer died.

        The caller claimed it (:meth:`claim_reply_surfaces`). The reply is replaced
        by a new one (``Started`` names it) when it is still the last message of its
        session after its question; otherwise it is marked interrupted and
        InvalidInput says why. While the new answer waits for its turn or a queue
        slot, the claimed reply's lease is renewed: no other process claims it.
        """
        reply = await self._run(self.store.get_message, reply_id)
        if reply.status != MessageStatus.STREAMING:
            raise InvalidInput(f"reply {reply_id} is {reply.status}, not to be finished")
        last = await self._run(self.store.messages, reply.session_id, limit=2)
        if [m.id for m in last][-1:] != [reply_id] or len(last) < 2 or last[0].role != "user":
            await self._run(
                self.store.update_message,
                reply_id,
                status=MessageStatus.INTERRUPTED,
                error=RESUME_TOO_LATE,
                lease_until=None,
            )
            raise InvalidInput(RESUME_TOO_LATE)
        session = await self._run(self.store.get_session, reply.session_id)
        assert last[0].author_id is not None
        user = await self.get_user(last[0].author_id)
        async for event in self._answerer.answer_again(user, session, holding=reply_id):
            yield event

    async def chat(
        self,
        user: User,
        text: str,
        *,
        origin: str = Origin.TERMINAL,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """Answer a plain message under the user's status rules (Q&A mode, /chat).

        A ``disabled`` user gets ChatDisabled, before anything is stored.
        """
        if "session_id" in options or "new_session" in options:
            raise TypeError("chat() routes by status; use ask() to pick a session")
        # ask() with neither a session nor new_session routes by the status
        async for event in self.ask(user, text, origin=origin, **options):
            yield event

    async def ask(
        self,
        user: User,
        text: str,
        *,
        session_id: int | None = None,
        new_session: bool = False,
        origin: str = Origin.TERMINAL,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        title: str | None = None,
        external_ref: str | None = None,
        private: bool = False,
        attachments: Sequence[tuple[str, bytes] | str] = (),
        approve: Approve | None = None,
    ) -> AsyncIterator[Event]:
        """Store the question, stream the reply and store it as it arrives.

        Errors before anything is stored (empty text, unknown session or model,
        a private session, UserIgnored, RateLimited, ChatDisabled when routing)
        raise; later failures end the stream with ``Failed``. ``WaitingForTurn``
        comes first when another ask holds the session. A ``private`` question
        (Discord's ``/private``) never goes into a public session: one routed
        there starts a new private session instead. ``attachments`` are files
        (name, content), or URLs to fetch them from, that come with the question:
        refused in one line before anything is stored when they are not images or
        text, too many, too big, or cannot be fetched. ``approve`` is asked about
        each tool call the terminal user must confirm (without it, such calls are
        denied with a notice); see ``mschat.core.tools.policy``.
        """
        # ranked among the user's questions now, before anything is awaited: the
        # queue takes a user's questions in the order they were asked
        ticket = self._answerer.queue.ticket(user.id)
        try:
            async for event in self._ask(
                user,
                text,
                ticket,
                session_id=session_id,
                new_session=new_session,
                origin=origin,
                model=model,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                title=title,
                external_ref=external_ref,
                private=private,
                attachments=attachments,
                approve=approve,
            ):
                yield event
        finally:
            ticket.done()

    async def _ask(
        self,
        user: User,
        text: str,
        ticket: Ticket,
        *,
        session_id: int | None,
        new_session: bool,
        origin: str,
        model: str | None,
        system: str | None,
        temperature: float | None,
        max_tokens: int | None,
        title: str | None,
        external_ref: str | None,
        private: bool,
        attachments: Sequence[tuple[str, bytes] | str],
        approve: Approve | None = None,
    ) -> AsyncIterator[Event]:
        """The body of :meth:`ask`, once the question is ranked."""
        if not text or not text.strip():
            raise InvalidInput("the message is empty")
        files = await self._files(attachments) if attachments else []
        if temperature is not None:
            temperature = validate_temperature(temperature)
        if max_tokens is not None:
            max_tokens = validate_max_tokens(max_tokens)
        explicit_model = await self.resolve_model(model) if model else None
        await self._check_allowed(user)

        session: Session | None = None
        left: str | None = None
        if session_id is not None:
            session = await self.usable_session(user, session_id)
            if private and session.public:
                raise InvalidInput(
                    f"session {session_id} is public; a private question needs a private one"
                )
        elif not new_session:
            session, left = await self.route(user)
            if private and session is not None and session.public:
                session, left = None, "public"
        left_session = (user.current_session_id, left) if left else None
        target: Session | NewSession
        if session is None:
            # made in the question's transaction: a refused question leaves no session
            explicit_model = explicit_model or await self.resolve_model(user.model)
            target = NewSession(
                self._session_values(
                    user,
                    origin=origin,
                    title=title or make_title(text),
                    model=explicit_model,
                    system_msg=system,
                    public=False if private else None,
                ),
                user_changes=self._attach_changes(user),
            )
        else:
            target = session
        async for event in self._answerer.answer(
            user,
            target,
            text,
            model=explicit_model,
            left_session=left_session,
            admit=self._admission(user),
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            external_ref=external_ref,
            ticket=ticket,
            attachments=files,
            approve=approve,
        ):
            if isinstance(event, Started) and isinstance(target, NewSession):
                self._attached(user, event.session, target.user_changes)
            yield event

    async def _check_allowed(self, user: User) -> None:
        """Refusals due before anything is done: an ignored user, and (when questions
        are one at a time) a user whose question is being answered.

        The rate limit is counted where the question is stored (:meth:`_admission`).
        """
        eligibility.check_not_ignored(user)
        if self.defaults["one_question_at_a_time"]:
            # said at once rather than after waiting for a busy session's turn
            await self._run(eligibility.check_not_answering, self.store, user)

    def _admission(self, user: User, *, counted: bool = True) -> Callable[[], None] | None:
        """The rate limit and one question at a time, checked as the question is stored."""
        return eligibility.admission(
            self.store,
            user,
            one_at_a_time=bool(self.defaults["one_question_at_a_time"]),
            counted=counted,
        )

    @staticmethod
    def _attach_changes(user: User) -> dict[str, Any] | None:
        """With attach on, a new session becomes current and the status active."""
        if user.status == Status.NEW and not user.attach:
            return None
        return {"status": Status.ACTIVE.value} if user.status == Status.NEW else {}

    @staticmethod
    def _attached(user: User, session: Session, changes: dict[str, Any] | None) -> None:
        """The caller's user as the transaction that created ``session`` left it."""
        if changes is None:
            return
        user.current_session_id = session.id
        user.status = changes.get("status", user.status)

    async def regenerate(self, user: User, session_id: int, **options: Any) -> AsyncIterator[Event]:
        """Replace the last reply of a session by a new one (creator only)."""
        session = await self._editable(user, session_id)
        await self._check_allowed(user)
        admit = self._admission(user, counted=False)  # the same question, asked again
        async for event in self._answerer.answer_again(user, session, admit=admit, **options):
            yield event

    async def fork(self, user: User, message_id: int, new_text: str) -> Session:
        """Copy a session up to (not including) a user message into a new session.

        The original is kept; the caller then asks ``new_text`` in the fork.
        """
        if not new_text.strip():
            raise InvalidInput("the message is empty")
        message = await self._run(self.store.get_message, message_id)
        source = await self.get_session(user, message.session_id)
        history = await self._run(self.store.messages, source.id, before_id=message_id)
        fork = await self._run(
            self.store.create_session,
            creator_id=user.id,
            title=clean_title(f"{source.title} (edit)"),
            model=source.model,
            system_msg=source.system_msg,
            public=0,
            origin=Origin.TERMINAL.value if user.kind == UserKind.LOCAL else source.origin,
            forked_from_id=source.id,
        )

        await self._run(self.store.insert_messages, fork.id, [asdict(m) for m in history])
        return await self._run(self.store.get_session, fork.id)

    async def import_session(self, user: User, data: dict[str, Any]) -> Session:
        """Create a private session of ``user`` from an exported JSON document.

        Messages keep their roles, content, times and statuses; authors become
        ``user`` for user turns (the original authors may not exist here).
        """
        from mschat.core.export import parse_export  # not on the ask path (see imports)

        session_data, rows = parse_export(data, author_id=user.id)
        session = await self._run(
            self.store.create_session,
            creator_id=user.id,
            title=clean_title(str(session_data.get("title") or "Imported session")),
            model=session_data.get("model"),
            system_msg=session_data.get("system_msg"),
            public=0,
            origin=Origin.TERMINAL.value if user.kind == UserKind.LOCAL else Origin.API.value,
        )

        def insert() -> None:
            with self.store.write():
                save_files(self.store, rows)
                self.store.insert_messages(session.id, rows)

        await self._run(insert)
        return await self._run(self.store.get_session, session.id)

    async def import_file(self, user: User, path: str | Path) -> list[Session]:
        """Import a file's conversations as private sessions of ``user``; the new sessions.

        Reads mschat's JSON export, a ChatGPT ``conversations.json`` (or the
        export's zip) and an llm ``logs.db``; any other file is an InvalidInput
        naming it. Each conversation is stored in its own transaction;
        conversations this user imported before, unchanged, are skipped.
        """
        from mschat.core.importers.files import open_file
        from mschat.core.importers.save import save_imported

        origin = Origin.TERMINAL.value if user.kind == UserKind.LOCAL else Origin.API.value
        items = await self._run(open_file, Path(path), str(path))
        imported = []
        try:
            while (item := await self._run(next, items, None)) is not None:
                session = await self._run(save_imported, self.store, user, item, origin)
                if session is not None:
                    imported.append(session)
        finally:
            await self._run(items.close)
        return imported

    async def import_messages(
        self,
        user: User,
        session_id: int,
        turns: Sequence[tuple[str, str] | tuple[str, str, Sequence[tuple[str, bytes] | str]]],
    ) -> list[Message]:
        """Append earlier (role, content[, files]) turns to a session the user may change.

        For front ends that receive a whole conversation at once (the
        OpenAI-compatible API): user turns are authored by ``user``, assistant
        turns are stored as complete replies of the session's model. A user
        turn's files are checked (and fetched) as a question's are.
        """
        session = await self._editable(user, session_id)
        for role, *_ in turns:
            if role not in ("user", "assistant"):
                raise InvalidInput(f"only user and assistant turns can be imported, not {role!r}")
        files = [await self._files(turn[2]) if len(turn) > 2 and turn[2] else [] for turn in turns]

        def insert() -> list[Message]:
            with self.store.write():
                added = []
                for (role, content, *_), prepared in zip(turns, files, strict=True):
                    for info, data in prepared:
                        self.store.save_attachment(info, data)
                    extra: dict[str, Any] = (
                        {"attachments": tuple(i for i, _ in prepared)} if prepared else {}
                    )
                    added.append(
                        self.store.add_message(
                            session_id=session.id,
                            author_id=user.id if role == "user" else None,
                            role=role,
                            content=content,
                            model=session.model if role == "assistant" else None,
                            **extra,
                        )
                    )
                return added

        async with self._answerer.turns.lock(session.id):
            return await self._run(insert)

    # ---- front ends running as several processes (the sharded bot) ----------

    async def claim_notice(
        self, user: User, name: str, interval: timedelta, *, source: str
    ) -> bool:
        """Whether to send ``user`` the notice ``name`` now: at most once per ``interval``.

        Counted in the database (the ``interactions`` table, kind ``notice``), so every
        process sharing it agrees: of two claiming at once, one gets True.
        """
        now = datetime.now(UTC)
        since = (now - interval).isoformat(timespec="microseconds")
        return await self._run(
            self.store.claim_notice,
            user.id,
            source,
            name,
            since,
            now.isoformat(timespec="microseconds"),
        )

    def share_turns(self) -> None:
        """Take turns across processes in every session, private ones too.

        For a front end running as several processes that serve the same users (a
        sharded bot: a DM and a guild message of one user may reach two processes).
        """
        self._answerer.turns.every_session = True

    # ---- live views ---------------------------------------------------------

    async def watch_changes(
        self, *, poll_interval: float = 0.5
    ) -> AsyncGenerator[list[Change], None]:
        """Other instances' changes to users, sessions and messages, in batches (live views).

        The first batch, at once, is ``[Change()]``: listening has started, so a
        view that loads everything now misses nothing after. On PostgreSQL the
        database pushes the changes (LISTEN/NOTIFY, no polling); on SQLite
        ``data_version`` is polled every ``poll_interval`` seconds. Notices that
        arrive while the caller is busy come as one batch. This store's own
        writes are not reported. Closing the iterator stops the feed.
        """
        loop = asyncio.get_running_loop()
        feed = await self._run(self.store.changes, poll_interval)
        batches: asyncio.Queue[list[Change] | Exception] = asyncio.Queue()

        def hand_over(item: list[Change] | Exception) -> None:
            try:
                loop.call_soon_threadsafe(batches.put_nowait, item)
            except RuntimeError:  # the event loop is closed
                feed.close()

        def listen() -> None:
            # the feed blocks (a socket, or the pauses of a poll): a thread of its own
            try:
                while not feed.closed:
                    batch = feed.wait()
                    if batch:
                        hand_over(batch)
            except Exception as exc:  # a bug (the feed deals with lost connections itself)
                feed.close()
                hand_over(exc)

        threading.Thread(target=listen, name="mschat-changes", daemon=True).start()
        try:
            batch = [Change()]
            while True:
                yield batch
                batch = []
                while not batch or not batches.empty():
                    item = await batches.get()
                    if isinstance(item, Exception):
                        raise item
                    batch += item
                batch = list(dict.fromkeys(batch))
        finally:
            feed.close()

    # ---- Discord's /clear ---------------------------------------------------

    async def clear_current_session(self, user: User) -> User:
        """Detach the current session and set the status ``new``: the next plain
        message starts a fresh session. Refused to an ignored or disabled user
        (it would opt them in)."""
        eligibility.check_not_ignored(user)
        eligibility.check_may_route(user)
        return await self._run(
            self.store.update_user,
            user.id,
            status=Status.NEW.value,
            current_session_id=None,
            modified=utcnow(),
        )


__all__ = ["SessionManager"]
