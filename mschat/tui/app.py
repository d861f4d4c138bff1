"""The mschat terminal UI: ``make_app(services)`` builds it, ``run(services)`` runs it.

The app is a thin adapter over the core's SessionManager: every manager call runs
in a Textual worker (sends in exclusive per-session workers), the core's events are
rendered as they arrive, and other instances' writes come from the manager's change
feed (pushed by PostgreSQL; SQLite's ``PRAGMA data_version``, polled).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import click
from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Footer, Static
from textual.worker import Worker, get_current_worker

from mschat.core.attachments import safe_name, size_text
from mschat.core.costs import parse_since
from mschat.core.errors import (
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    MschatError,
    NotFound,
    PermissionDenied,
)
from mschat.core.events import (
    Completed,
    Event,
    Failed,
    HistoryTrimmed,
    Queued,
    Retrying,
    Started,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
    WaitingForTurn,
)
from mschat.core.feedback import AnswerFeedback
from mschat.core.models import Message, MessageStatus, SearchHit, Session, User
from mschat.core.services import Services
from mschat.core.tools.loop import ToolRequest
from mschat.state import State
from mschat.store.contract import Change
from mschat.tui.commands import MschatCommands, bindings
from mschat.tui.format import code_blocks, one_line, session_mark, title_of
from mschat.tui.screens.admin import AdminScreen
from mschat.tui.screens.attach import AttachScreen
from mschat.tui.screens.feedback import FeedbackScreen
from mschat.tui.screens.modals import ChoiceScreen, ConfirmScreen, TextInputScreen
from mschat.tui.screens.search import SearchScreen
from mschat.tui.screens.settings import SettingsScreen
from mschat.tui.widgets.chat import MESSAGE_PAGE, ChatView, LiveReply
from mschat.tui.widgets.prompt import PromptArea
from mschat.tui.widgets.sidebar import PAGE_SIZE, SessionList
from mschat.tui.widgets.status import WAITING, StatusBar
from mschat.visible import visible

#: seconds between change checks where the database cannot push changes (SQLite)
POLL_INTERVAL = 0.5
#: seconds before a refresh that could not reach the database is tried again
REFRESH_RETRY = 1.0
#: a search hit in a session longer than this opens on a window around the hit
JUMP_CONTIGUOUS_LIMIT = 1000
SEARCH_LIMIT = 50
#: remembered in the MSCHAT_HOME's state: the session last open per database and view
STATE_SESSIONS = "tui.sessions"
STATE_THEME = "tui.theme"


class MainScreen(Screen[None]):
    """Banner, sidebar, chat, prompt, status bar and footer."""

    BINDINGS = bindings()
    #: screen classes by terminal width: the sidebar shrinks, then hides (Ctrl+B shows it);
    #: a plain attribute, as Textual declares it (mypy refuses a ClassVar here)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (72, "-medium"), (110, "-wide")]  # noqa: RUF012

    def compose(self) -> ComposeResult:
        """The whole layout."""
        yield Static("mschat", id="banner")
        with Horizontal(id="body"):
            with Vertical(id="sidebar-pane"):
                yield Static("Sessions", id="sidebar-title")
                yield SessionList(id="sidebar")
            with Vertical(id="main-pane"):
                yield Static("", id="session-title")
                yield ChatView(id="chat")
                yield Static("", id="pending-files")
                yield PromptArea(id="prompt", placeholder="Message — Enter sends, Ctrl+J newline")
                yield StatusBar(id="status")
        yield Footer(compact=True)


def save_download(name: str, data: bytes) -> Path:
    """Write a file into the user's downloads folder, beside any of the same name."""
    from platformdirs import user_downloads_path

    folder = user_downloads_path()
    folder.mkdir(parents=True, exist_ok=True)
    stem, dot, suffix = name.rpartition(".") if "." in name[1:] else (name, "", "")
    path, copy = folder / name, 1
    while True:
        try:
            with open(path, "xb") as file:  # never over an existing file
                file.write(data)
            return path
        except FileExistsError:
            copy += 1
            path = folder / f"{stem} ({copy}){dot}{suffix}"


class MschatApp(App[None]):
    """Browse, search, edit and chat in every session of the store."""

    CSS_PATH = "app.tcss"
    TITLE = "mschat"
    COMMANDS = App.COMMANDS | {MschatCommands}

    def __init__(
        self,
        services: Services,
        *,
        user_ref: str | None = None,
        poll_interval: float = POLL_INTERVAL,
        admin: bool = False,
    ) -> None:
        super().__init__()
        #: open the admin screen once started (``serve-admin``)
        self.start_admin = admin
        self.services = services
        self.manager = services.manager
        self.user_ref = user_ref
        self.poll_interval = poll_interval
        self.me: User | None = None
        self.viewer: User | None = None
        self.everyone = False
        self.session: Session | None = None
        self.ready = False
        self.detached = False  # showing a window around a search hit, not the tail
        self.last_id = 0
        self.remote_streaming: set[int] = set()
        self.local_replies: dict[int, int] = {}  # reply id -> session id
        self.send_workers: dict[int, Worker[None]] = {}
        #: files (name, content) that go with the next question from the prompt
        self.pending_files: list[tuple[str, bytes]] = []
        #: applies other instances' changes for the app's lifetime (not a worker, so
        #: waiting for the workers to complete does not wait for it)
        self._follower: asyncio.Task[None] | None = None
        self._applying = asyncio.Lock()  # one refresh at a time (the feed's, or a retry)
        self._retry_due = False
        #: the database was unreachable, and no live refresh has reached it since
        self._outage = False
        self.state = State.of_home()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Show a notice; its text (titles, names, errors) is never markup nor control codes."""
        super().notify(
            visible(message),
            title=one_line(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def exit(self, *args: Any, **kwargs: Any) -> None:
        """Stop following changes, then exit."""
        self.ready = False
        self._stop_following()
        super().exit(*args, **kwargs)

    def on_unmount(self) -> None:
        """Stop following changes (the app shuts down)."""
        self._stop_following()

    def _stop_following(self) -> None:
        if self._follower is not None:
            self._follower.cancel()

    def get_default_screen(self) -> Screen[Any]:
        """The main screen."""
        return MainScreen()

    # ---- widgets -------------------------------------------------------------

    @property
    def sidebar(self) -> SessionList:
        """The session list."""
        return self.screen_stack[0].query_one("#sidebar", SessionList)

    @property
    def chat(self) -> ChatView:
        """The chat view."""
        return self.screen_stack[0].query_one("#chat", ChatView)

    @property
    def prompt(self) -> PromptArea:
        """The prompt."""
        return self.screen_stack[0].query_one("#prompt", PromptArea)

    @property
    def pending_bar(self) -> Static:
        """The files that go with the next question, shown above the prompt."""
        return self.screen_stack[0].query_one("#pending-files", Static)

    @property
    def status(self) -> StatusBar:
        """The status bar."""
        return self.screen_stack[0].query_one("#status", StatusBar)

    # ---- who acts ----------------------------------------------------------------

    @property
    def actor(self) -> User:
        """Who reads and edits: the local admin, else the user whose view this is."""
        assert self.me is not None and self.viewer is not None
        return self.me if self.me.admin else self.viewer

    def _view_label(self) -> str:
        viewer = self.viewer
        if viewer is None:
            return "loading…"
        label = f"view: {one_line(viewer.label)}"
        if self.me is not None and viewer.id != self.me.id:
            label += f" (as admin {one_line(self.me.name)})"
        elif viewer.admin:
            label += " (admin)"
        if self.everyone:
            label += " · all users' sessions"
        return label

    def _show_view(self) -> None:
        label = self._view_label()
        self.screen_stack[0].query_one("#banner", Static).update(
            Text(f"mschat · {label} · Ctrl+P commands")
        )
        self.status.view_label = label
        title = "All sessions" if self.everyone else "Sessions"
        self.screen_stack[0].query_one("#sidebar-title", Static).update(title)
        self.sidebar.show_creator = self.everyone or bool(self.viewer and self.viewer.show_public)

    # ---- workers -------------------------------------------------------------------

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, group: str = "default", exclusive: bool = False
    ) -> Worker[Any]:
        """Run a manager call off the UI path; errors become notifications."""
        return self.run_worker(
            self._guarded(coro), group=group, exclusive=exclusive, exit_on_error=False
        )

    async def _guarded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            result = await coro
        except DatabaseUnavailable as error:
            # every refused action says so (the live refresh, once per outage: _apply)
            self.notify(str(error), title="mschat", severity="error", timeout=8)
            self._outage = True
        except MschatError as error:
            self.notify(str(error), title="mschat", severity="error", timeout=8)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.error(repr(exc))
            self.notify(f"unexpected error: {exc!r}", severity="error", timeout=10)
        else:
            return result
        return None

    # ---- start-up ----------------------------------------------------------------------

    def on_mount(self) -> None:
        """Use the theme chosen last time, and remember the next choice."""
        theme = self.state.get(STATE_THEME)
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, theme: Theme) -> None:
        if self.state.get(STATE_THEME) != theme.name:
            self.state.set(STATE_THEME, theme.name)

    def on_ready(self) -> None:
        """Load the user and the first sidebar page; follow other instances' changes."""
        self.prompt.focus()
        self.manager.watch_replies()
        self.spawn(self._startup(), group="startup")

    async def _startup(self) -> None:
        changes = self.manager.watch_changes(poll_interval=self.poll_interval)
        try:
            await anext(changes)  # listening: nothing changed after this load is missed
            self.me = await self.manager.local_user()
            self.viewer = self.me
            if self.user_ref:
                try:
                    await self._become(await self.manager.find_user(self.user_ref))
                except MschatError as error:
                    self.notify(f"{error}; showing your own view", severity="error", timeout=8)
            self._show_view()
            await self._reload_sidebar()
            await self._open_initial()
        except BaseException:
            await changes.aclose()
            raise
        self.ready = True
        self._follower = asyncio.create_task(
            self._guarded(self._follow(changes)), name="mschat-changes"
        )
        if self.start_admin:
            self.action_admin()

    async def _become(self, user: User) -> None:
        assert self.me is not None
        if user.id != self.me.id and not self.me.admin:
            raise PermissionDenied("only an admin may switch to another user's view")
        self.viewer = user

    async def _open_initial(self) -> None:
        """The session last open in this view, else the user's current one, else the newest."""
        viewer = self.viewer
        assert viewer is not None
        candidates = [self._remembered_session(), viewer.current_session_id]
        if self.sidebar.sessions:
            candidates.append(self.sidebar.sessions[0].id)
        for target in dict.fromkeys(c for c in candidates if c is not None):
            try:
                await self.open_session(target)
                return
            except MschatError:
                pass  # deleted or made private since: try the next one
        await self._show_empty()

    def _remembered(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every database's last sessions, and this database's (by viewer id)."""
        remembered = self.state.get(STATE_SESSIONS)
        remembered = remembered if isinstance(remembered, dict) else {}
        here = remembered.get(self.services.store.identity)
        return remembered, here if isinstance(here, dict) else {}

    def _remembered_session(self) -> int | None:
        assert self.viewer is not None
        value = self._remembered()[1].get(str(self.viewer.id))
        return value if isinstance(value, int) else None

    async def _remember_session(self, session_id: int) -> None:
        assert self.viewer is not None
        remembered, here = self._remembered()
        if here.get(str(self.viewer.id)) == session_id:
            return
        # keyed by database too: an id in another database is another conversation
        remembered[self.services.store.identity] = {**here, str(self.viewer.id): session_id}
        await asyncio.to_thread(self.state.set, STATE_SESSIONS, remembered)

    async def _show_empty(self) -> None:
        self.session = None
        self.sidebar.set_current(None)
        self.last_id = 0
        self.remote_streaming.clear()
        await self.chat.show_session(None, [], has_older=False)
        self.screen_stack[0].query_one("#session-title", Static).update(
            "No session open — type a message to start one (Ctrl+N new session)"
        )
        self.status.model = self._default_model()
        self.status.tokens = None
        self.status.context_window = None

    def _default_model(self) -> str:
        known = self.manager.known_model(self.viewer.model if self.viewer else None)
        return known.full_name if known else ""

    # ---- sidebar -------------------------------------------------------------------------

    async def _list_sessions(self, offset: int) -> list[Session]:
        assert self.me is not None and self.viewer is not None
        if self.everyone:
            return await self.manager.list_sessions(
                self.me, everyone=True, limit=PAGE_SIZE, offset=offset
            )
        return await self.manager.list_sessions(self.viewer, limit=PAGE_SIZE, offset=offset)

    async def _reload_sidebar(self) -> None:
        page = await self._list_sessions(0)
        self.sidebar.set_sessions(page, exhausted=len(page) < PAGE_SIZE)

    async def _refresh_sidebar(self) -> None:
        page = await self._list_sessions(0)
        self.sidebar.merge_first_page(page)
        if self.session is not None:
            for session in page:
                if session.id == self.session.id:
                    self._set_session(session)

    def on_session_list_more_wanted(self, event: SessionList.MoreWanted) -> None:
        """Load the next sidebar page."""
        self.spawn(self._more_sessions(event.offset), group="sidebar-more", exclusive=True)

    async def _more_sessions(self, offset: int) -> None:
        try:
            page = await self._list_sessions(offset)
            self.sidebar.add_page(page, exhausted=len(page) < PAGE_SIZE)
        finally:
            self.sidebar.loading = False

    def on_session_list_session_chosen(self, event: SessionList.SessionChosen) -> None:
        """Open the chosen session."""
        self.spawn(self.open_session(event.session_id), group="open", exclusive=True)

    # ---- opening a session ---------------------------------------------------------------

    def _set_session(self, session: Session) -> None:
        self.session = session
        creator = f" · by {one_line(session.creator_name)}" if session.creator_name else ""
        hidden = " · hidden" if session.hidden else ""
        model = one_line(session.model or "default model")
        self.screen_stack[0].query_one("#session-title", Static).update(
            Text(f"{session_mark(session)} {title_of(session)}  ({model}{creator}{hidden})")
        )
        self.status.model = session.model or self._default_model()
        known = self.manager.known_model(session.model)
        self.status.context_window = known.context_window if known else None

    async def open_session(self, session_id: int, *, jump_to: int | None = None) -> None:
        """Show a session on its last page (or around a search hit)."""
        actor = self.actor
        session = await self.manager.get_session(actor, session_id)
        self.detached = False
        if jump_to is None:
            messages = await self.manager.messages(actor, session_id, limit=MESSAGE_PAGE)
            has_older = len(messages) == MESSAGE_PAGE
        else:
            before = await self.manager.messages(
                actor, session_id, limit=MESSAGE_PAGE // 2, before_id=jump_to + 1
            )
            has_older = len(before) == MESSAGE_PAGE // 2
            if session.message_count <= JUMP_CONTIGUOUS_LIMIT:
                after = await self.manager.messages(actor, session_id, after_id=jump_to)
            else:
                after = await self.manager.messages(
                    actor, session_id, after_id=jump_to, before_id=jump_to + MESSAGE_PAGE
                )
                self.detached = True
            messages = before + after
        self._set_session(session)
        self.sidebar.set_current(session.id)
        self.status.trimmed = 0
        self.status.state = "streaming" if session.id in self.send_workers else "idle"
        self.status.tokens = _tokens_of(messages)
        local = {rid for rid, sid in self.local_replies.items() if sid == session.id}
        shown = [m for m in messages if m.id not in local]
        replies = [m.id for m in shown if m.role == "assistant"]
        calls = await self.manager.tool_calls_of(actor, session.id, replies)
        await self.chat.show_session(session.id, shown, has_older=has_older, calls=calls)
        self.last_id = max((m.id for m in messages), default=0)
        self.remote_streaming = {m.id for m in shown if m.status == MessageStatus.STREAMING}
        self.hide_sidebar()
        await self._remember_session(session.id)
        if self.detached:
            self.notify("Showing the messages around the hit; reopen the session to follow it")
        if jump_to is not None:
            self.chat.jump_to(jump_to)

    def on_chat_view_older_wanted(self, event: ChatView.OlderWanted) -> None:
        """Load the page before the oldest shown message."""
        self.spawn(self._load_older(event.before_id), group="older", exclusive=True)

    async def _load_older(self, before_id: int) -> None:
        if self.session is None:
            return
        try:
            page = await self.manager.messages(
                self.actor, self.session.id, limit=MESSAGE_PAGE, before_id=before_id
            )
        except BaseException:
            self.chat.loading_older = False
            raise
        await self.chat.add_older(page, has_older=len(page) == MESSAGE_PAGE)

    # ---- live updates --------------------------------------------------------------------

    async def _follow(self, changes: AsyncGenerator[list[Change], None]) -> None:
        """Apply other instances' changes as the feed reports them, until the app exits."""
        try:
            async for batch in changes:
                await self._guarded(self._apply(batch))  # an error ends no live view
        finally:
            await changes.aclose()

    async def _apply(self, changes: list[Change]) -> None:
        """Reload what changed; if the database cannot be reached, everything again later.

        After a database restart the feed's first notice says anything may have
        changed, and the first query may still meet a dropped connection: the
        refresh is then tried again rather than lost.
        """
        try:
            async with self._applying:
                await self._reload_changed(changes)
        except DatabaseError as error:
            self.log.warning(f"live view not refreshed: {error}")
            if isinstance(error, DatabaseUnavailable) and not self._outage:
                self._outage = True  # said once, however often the refresh is tried
                self.notify(str(error), title="mschat", severity="error", timeout=8)
            if self.ready and not self._retry_due:
                self._retry_due = True
                self.set_timer(REFRESH_RETRY, self._retry_refresh)
        else:
            if self._outage:
                self._outage = False
                self.notify("The database is reachable again", title="mschat", timeout=5)

    def _retry_refresh(self) -> None:
        self._retry_due = False
        self.spawn(self._apply([Change()]), group="changes")

    async def _reload_changed(self, changes: list[Change]) -> None:
        """The sidebar if sessions changed, the open session's messages if it did; an
        admin screen's tab shown."""
        for screen in self.screen_stack:
            if isinstance(screen, AdminScreen):
                screen.store_changed()
        if any(change.concerns_session_list for change in changes):
            await self._refresh_sidebar()
        if self.session is None or self.detached:
            return
        session_id = self.session.id
        if not any(change.concerns_session(session_id) for change in changes):
            return
        try:
            await self._pull_messages(session_id)
        except (NotFound, PermissionDenied):
            # deleted (or made private) by another instance while open here
            self.sidebar.drop(session_id)
            if self.session is not None and self.session.id == session_id:
                await self._show_empty()
            self.notify(f"Session {session_id} was removed or made private elsewhere")

    async def _pull_messages(self, session_id: int) -> None:
        after = self.last_id
        if self.remote_streaming:
            after = min(after, min(self.remote_streaming) - 1)
        changed = await self.manager.messages_since(self.actor, session_id, after)
        if self.session is None or self.session.id != session_id:
            return
        for message in changed:
            if message.id in self.local_replies:
                continue
            if message.id <= self.last_id and message.id not in self.remote_streaming:
                continue
            await self.chat.add_message(message)
            if message.status == MessageStatus.STREAMING:
                self.remote_streaming.add(message.id)
            else:
                self.remote_streaming.discard(message.id)
            self.last_id = max(self.last_id, message.id)

    # ---- sending -------------------------------------------------------------------------

    def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        """Send the prompt in the open session (or a new one)."""
        if self.viewer is None:
            self.notify("still loading…", severity="warning")
            return
        session_id = self.session.id if self.session else None
        if session_id is not None and session_id in self.send_workers:
            self.notify(
                "A reply is still streaming here: wait, or stop it with Escape", severity="warning"
            )
            return
        self.start_send(event.text, session_id)

    def start_send(self, text: str, session_id: int | None) -> Worker[Any]:
        """Ask in an exclusive worker for this session."""
        assert self.viewer is not None
        options: dict[str, Any] = {
            "attachments": list(self.pending_files),
            "approve": self.approve_tool,
        }
        if session_id is None:
            events = self.manager.ask(self.viewer, text, new_session=True, **options)
        else:
            events = self.manager.ask(self.viewer, text, session_id=session_id, **options)
        # exclusive per session; sends that create a session must not cancel each other
        return self.spawn(
            self._stream(events, session_id, prompt_text=text),
            group=f"send-{session_id or 'new'}",
            exclusive=session_id is not None,
        )

    async def approve_tool(self, request: ToolRequest) -> bool:
        """Ask whether a tool call that needs confirmation may run (the core's policy
        decides which do); its arguments are shown as plain visible text."""
        arguments = visible(request.arguments)
        if len(arguments) > 1000:
            arguments = arguments[:1000] + "…"
        decided: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        question = f"Run tool {request.name}?\n\narguments: {arguments}"

        def answered(answer: bool | None) -> None:
            if not decided.done():
                decided.set_result(bool(answer))

        self.push_screen(ConfirmScreen(question, confirm="Run"), answered)
        return await decided

    def _track(self, session_id: int) -> None:
        """Remember the running send worker of a session (Escape cancels it)."""
        self.send_workers[session_id] = get_current_worker()

    async def _stream(
        self,
        events: AsyncIterator[Event],
        session_id: int | None,
        *,
        prompt_text: str | None = None,
    ) -> None:
        """Render one ask's events: the live reply, status bar and failures."""
        live: LiveReply | None = None
        reply: Message | None = None
        arguments: dict[str, str] = {}  # a tool call's arguments, by call id
        sid = session_id
        told_waiting = False
        if sid is not None:
            self._track(sid)
            self.status.state = "sending…"
        try:
            async for event in events:
                if isinstance(event, WaitingForTurn):
                    sid = event.session_id
                    self._track(sid)
                    # the place in line changes: the status follows it, one notice says it
                    waiting = event.text if isinstance(event, Queued) else WAITING
                    if self._is_open(sid):
                        self.status.state = waiting
                    if not told_waiting:
                        told_waiting = True
                        self.notify(waiting)
                elif isinstance(event, Started):
                    sid = event.session.id
                    self._track(sid)
                    reply = Message(
                        id=event.reply_id,
                        session_id=sid,
                        author_id=None,
                        role="assistant",
                        content="",
                        created=event.user_message.created,
                        status=MessageStatus.STREAMING,
                        model=event.model,
                    )
                    self.local_replies[reply.id] = sid
                    if prompt_text is not None and self.prompt.text == prompt_text:
                        self.prompt.clear()  # stored now: nothing typed can be lost
                        self._set_pending([])
                    # a new session, or an empty one the core just titled from the question
                    self.sidebar.upsert(event.session)
                    if event.created_session:
                        await self.open_session(sid)
                    elif self._is_open(sid):
                        self._set_session(event.session)
                    if self._is_open(sid):
                        await self.chat.add_message(event.user_message)
                        self.last_id = max(self.last_id, event.user_message.id)
                        live = await self.chat.start_live(reply)
                        self.status.state = "streaming"
                        self.status.model = event.model
                        self.status.context_window = event.context_window
                        self.status.trimmed = 0
                elif isinstance(event, TextDelta):
                    if reply is not None:
                        reply.content += event.text
                    if live is not None and live.is_attached:
                        await live.write(event.text)
                    elif reply is not None and self._is_open(sid):
                        live = await self._resume_live(reply)
                elif isinstance(event, HistoryTrimmed):
                    if self._is_open(sid):
                        self.status.trimmed = event.dropped
                    self.notify(
                        f"History trimmed: {event.dropped} older turns left out "
                        f"to fit the context window",
                        severity="warning",
                    )
                elif isinstance(event, Retrying):
                    if self._is_open(sid):
                        self.status.state = f"retrying (attempt {event.attempt})"
                elif isinstance(event, ToolCallStarted):
                    arguments[event.call_id] = event.arguments
                    if self._is_open(sid):
                        self.status.state = f"running tool {one_line(event.tool)}"
                elif isinstance(event, ToolCallFinished):
                    if self._is_open(sid):
                        await self.chat.add_tool_call(event, arguments.get(event.call_id, ""))
                        self.status.state = "streaming"
                elif isinstance(event, UsageReported):
                    pass
                elif isinstance(event, Completed):
                    await self._finish(live, event.message, sid)
                    live = None
                    if self._is_open(sid):
                        self.status.tokens = event.usage.total_tokens or (
                            event.prompt_tokens + (event.usage.completion_tokens or 0)
                        )
                        self.status.state = "idle"
                elif isinstance(event, Failed):
                    if event.message is not None:
                        await self._finish(live, event.message, sid)
                        live = None
                    if self._is_open(sid):
                        self.status.state = "failed"
                    self.notify(
                        str(event.error), title="The reply failed", severity="error", timeout=10
                    )
                    if prompt_text is not None and not self.prompt.text:
                        self.prompt.text = prompt_text  # ready to resend
        except asyncio.CancelledError:
            await _close(events)
            if reply is not None:
                stopped = dataclasses.replace(
                    reply, status=MessageStatus.INTERRUPTED, finish_reason="interrupted"
                )
                self.call_later(self._finish, live, stopped, sid)
                self.call_later(self.notify, "Reply stopped (kept as interrupted)")
            if self._is_open(sid):
                self.status.state = "interrupted"
            if self.ready:  # not while the app shuts down
                self.call_later(lambda: self.spawn(self._refresh_after_send()))
            raise
        except MschatError:
            if self._is_open(sid):
                self.status.state = "idle"
            raise  # nothing was stored: the prompt still holds the text
        finally:
            if sid is not None:
                self.send_workers.pop(sid, None)
            if reply is not None:
                self.local_replies.pop(reply.id, None)
        await self._refresh_after_send()

    async def _refresh_after_send(self) -> None:
        try:
            await self._refresh_sidebar()
        except MschatError:
            pass

    def _is_open(self, session_id: int | None) -> bool:
        return (
            session_id is not None
            and self.session is not None
            and self.session.id == session_id
            and not self.detached
        )

    async def _resume_live(self, reply: Message) -> LiveReply:
        """The session was left and opened again mid-reply: continue where the text is."""
        view = self.chat.views.pop(reply.id, None)
        if view is not None:
            await view.remove()
        live = await self.chat.start_live(reply)
        await live.write(reply.content)
        return live

    async def _finish(
        self, live: LiveReply | None, message: Message, session_id: int | None
    ) -> None:
        if not self._is_open(session_id):
            if live is not None:
                await live.close()
            return
        if live is not None and live.is_attached:
            if message.status != MessageStatus.COMPLETE and not message.content:
                message = dataclasses.replace(message, content=live.text)
            await self.chat.finish_live(live, message)
        else:
            await self.chat.add_message(message)
        self.last_id = max(self.last_id, message.id)

    # ---- actions -----------------------------------------------------------------------

    def _need_session(self) -> Session | None:
        if self.session is None:
            self.notify("Open a session first", severity="warning")
        return self.session

    def action_new_session(self) -> None:
        """Start an empty session and open it."""
        self.spawn(self._new_session(), group="edit")

    async def _new_session(self) -> None:
        assert self.viewer is not None
        session = await self.manager.create_session(self.viewer)
        self.sidebar.upsert(session)
        await self.open_session(session.id)
        self.prompt.focus()

    def action_rename(self) -> None:
        """Rename the open session."""
        session = self._need_session()
        if session is None:
            return

        def done(title: str | None) -> None:
            if title:
                self.spawn(
                    self._edit(
                        self.manager.rename_session(self.actor, session.id, title),
                        f"Renamed to {title!r}",
                    ),
                    group="edit",
                )

        self.push_screen(TextInputScreen("Rename session", session.title), done)

    async def _edit(self, change: Coroutine[Any, Any, Session], note: str) -> Session:
        session = await change
        self.sidebar.upsert(session)
        if self.session is not None and self.session.id == session.id:
            self._set_session(session)
        self.notify(note)
        return session

    def action_delete(self) -> None:
        """Delete the open session after confirmation."""
        session = self._need_session()
        if session is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.spawn(self._delete(session.id), group="edit")

        self.push_screen(
            ConfirmScreen(
                f"Delete session {session.title!r} and its {session.message_count} messages?"
            ),
            done,
        )

    async def _delete(self, session_id: int) -> None:
        await self.manager.remove_session(self.actor, session_id)
        self.sidebar.drop(session_id)
        self.notify("Session deleted")
        if self.session is not None and self.session.id == session_id:
            if self.sidebar.sessions:
                await self.open_session(self.sidebar.sessions[0].id)
            else:
                await self._show_empty()

    def action_toggle_public(self) -> None:
        """Make the open session public or private."""
        session = self._need_session()
        if session is not None:
            new = not session.public
            self.spawn(
                self._edit(
                    self.manager.set_session_public(self.actor, session.id, new),
                    "Session is now " + ("public" if new else "private"),
                ),
                group="edit",
            )

    def action_toggle_hidden(self) -> None:
        """Hide the open session from listings (or show it again)."""
        session = self._need_session()
        if session is not None:
            new = not session.hidden
            self.spawn(
                self._edit(
                    self.manager.set_session_hidden(self.actor, session.id, new),
                    "Session " + ("hidden" if new else "shown again"),
                ),
                group="edit",
            )

    async def model_choices(self) -> list[str]:
        """The usable models (the core's one list), the open session's model and the default."""
        names = [m.name for m in await self.manager.list_models()]
        if self.session is not None and self.session.model:
            names.append(self.session.model)
        default = self._default_model()
        if default:
            names.append(default)
        return list(dict.fromkeys(names))

    def action_change_model(self) -> None:
        """Pick the model of the open session."""
        session = self._need_session()
        if session is not None:
            self.spawn(self._pick_model(session), group="models", exclusive=True)

    async def _pick_model(self, session: Session) -> None:
        choices = [(m, m) for m in await self.model_choices()]

        def done(model: str | None) -> None:
            if model:
                self.spawn(
                    self._edit(
                        self.manager.set_session_model(self.actor, session.id, model),
                        f"Model: {model}",
                    ),
                    group="edit",
                )

        self.push_screen(
            ChoiceScreen("Model of this session", choices, current=session.model), done
        )

    def action_edit_system(self) -> None:
        """Edit the open session's system message."""
        session = self._need_session()
        if session is None:
            return

        def done(text: str | None) -> None:
            if text is not None:
                self.spawn(
                    self._edit(
                        self.manager.set_session_system(
                            self.actor, session.id, text.strip() or None
                        ),
                        "System message saved",
                    ),
                    group="edit",
                )

        self.push_screen(
            TextInputScreen(
                "System message of this session", session.system_msg or "", multiline=True
            ),
            done,
        )

    def action_stop(self) -> None:
        """Stop the reply streaming in the open session (kept as interrupted)."""
        if self.session is None or self.session.id not in self.send_workers:
            return
        self.send_workers[self.session.id].cancel()

    def action_regenerate(self) -> None:
        """Answer the last question of the open session again."""
        session = self._need_session()
        if session is None:
            return
        if session.id in self.send_workers:
            self.notify("A reply is still streaming here", severity="warning")
            return
        self.spawn(self._regenerate(session), group=f"send-{session.id}", exclusive=True)

    async def _regenerate(self, session: Session) -> None:
        assert self.viewer is not None
        user = self.viewer if self.manager.can_edit(self.viewer, session) else self.actor
        last_user = next((m for m in reversed(self.chat.messages()) if m.role == "user"), None)
        events = self.manager.regenerate(user, session.id)
        first = await _peek(events)  # raises before anything is deleted when not allowed
        if last_user is not None:
            await self.chat.remove_from(last_user.id + 1)
        await self._stream(_chain(first, events), session.id)

    def _target(self, role: str | None = None) -> Message | None:
        selected = self.chat.selected
        if selected is not None and (role is None or selected.message.role == role):
            return selected.message
        for message in reversed(self.chat.messages()):
            if (role is None and message.role == "assistant") or message.role == role:
                return message
        return None

    def action_edit_message(self) -> None:
        """Edit the selected (or last) question and resend it in a fork of the session."""
        if self._need_session() is None:
            return
        target = self._target("user")
        if target is None:
            self.notify("No question to edit here", severity="warning")
            return

        def done(text: str | None) -> None:
            if text and text.strip():
                self.spawn(self._fork(target.id, text), group="fork")

        self.push_screen(
            TextInputScreen(
                "Edit and resend (in a new session; the original is kept)",
                target.content,
                multiline=True,
            ),
            done,
        )

    async def _fork(self, message_id: int, text: str) -> None:
        assert self.viewer is not None
        fork = await self.manager.fork(self.viewer, message_id, text)
        self.sidebar.upsert(fork)
        await self.open_session(fork.id)
        self.notify(f"Forked into {fork.title!r}")
        self.start_send(text, fork.id)

    def action_copy(self) -> None:
        """Copy the selected (or last) message, or one of its code blocks."""
        target = self._target()
        if target is None:
            self.notify("Nothing to copy", severity="warning")
            return
        blocks = code_blocks(target.content)
        if not blocks:
            self._copy(target.content, "message")
            return
        choices = [("all", "The whole message")]
        for index, (language, code) in enumerate(blocks):
            first = code.strip().splitlines()[0] if code.strip() else ""
            choices.append(
                (str(index), f"Code block {index + 1} ({language or 'text'}): {first[:50]}")
            )

        def done(choice: str | None) -> None:
            if choice == "all":
                self._copy(target.content, "message")
            elif choice is not None:
                self._copy(blocks[int(choice)][1], f"code block {int(choice) + 1}")

        self.push_screen(ChoiceScreen("Copy", choices), done)

    def _copy(self, text: str, what: str) -> None:
        self.copy_to_clipboard(text)
        self.notify(f"Copied the {what} ({len(text)} characters)")

    def action_export_markdown(self) -> None:
        """Write the open session to a Markdown file."""
        self._export("markdown", "md")

    def action_export_json(self) -> None:
        """Write the open session to a JSON file."""
        self._export("json", "json")

    def _export(self, fmt: str, suffix: str) -> None:
        session = self._need_session()
        if session is None:
            return
        default = str(Path.cwd() / f"mschat-session-{session.id}.{suffix}")

        def done(path: str | None) -> None:
            if path:
                self.spawn(self._write_export(session.id, fmt, path), group="export")

        self.push_screen(TextInputScreen(f"Export as {fmt} to file", default), done)

    async def _write_export(self, session_id: int, fmt: str, path: str) -> None:
        text = await self.manager.export_session(self.actor, session_id, fmt)
        target = Path(path).expanduser()
        try:
            await asyncio.to_thread(target.write_text, text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {target}: {exc.strerror or exc}") from exc
        self.notify(f"Exported to {target}")

    def open_at(self, session_id: int, message_id: int) -> None:
        """Open a session at one of its messages (a search hit, an answer with feedback)."""
        self.spawn(self.open_session(session_id, jump_to=message_id), group="open", exclusive=True)

    def action_search(self) -> None:
        """Full-text search; choosing a hit opens its session at the message."""
        if self.viewer is None:
            return

        def done(hit: SearchHit | None) -> None:
            if hit is not None:
                self.open_at(hit.session_id, hit.message_id)

        self.push_screen(SearchScreen(self.search), done)

    async def search(self, text: str) -> list[SearchHit]:
        """Search as the viewer (or everyone's messages in the admin's all-sessions mode)."""
        assert self.viewer is not None and self.me is not None
        if self.everyone:
            return await self.manager.search(self.me, text, limit=SEARCH_LIMIT, everyone=True)
        return await self.manager.search(self.viewer, text, limit=SEARCH_LIMIT)

    def action_settings(self) -> None:
        """Edit the settings of the user whose view this is."""
        viewer = self.viewer
        if viewer is not None:
            self.spawn(self._open_settings(viewer), group="models", exclusive=True)

    async def _open_settings(self, viewer: User) -> None:
        models = [m.name for m in await self.manager.list_models()]

        async def save(changes: dict[str, Any]) -> User:
            return await self.manager.update_user(self.actor, viewer.id, **changes)

        def done(user: User | None) -> None:
            if user is not None:
                self.viewer = user
                if self.me is not None and user.id == self.me.id:
                    self.me = user
                self._show_view()
                self.spawn(self._reload_sidebar(), group="sidebar")

        self.push_screen(SettingsScreen(viewer, models, save), done)

    def action_switch_user(self) -> None:
        """Show the TUI as another user of the store (admin view)."""
        if self.me is None:
            return
        if not self.me.admin:
            self.notify("Only an admin may switch to another user's view", severity="error")
            return
        self.spawn(self._pick_user(), group="users")

    async def _pick_user(self) -> None:
        users = await self.manager.list_users()
        assert self.me is not None
        # what each user's answers cost lately, beside their name
        costs = await self.manager.spending_per_user(self.me, since=parse_since("30d"))
        currency = self.manager.currency

        def label(u: User) -> str:
            text = f"{u.label} · {u.status}" + (" · admin" if u.admin else "")
            if u.id in costs:
                text += f" · 30 days: {costs[u.id].text(currency)}"
            return text

        choices = [(str(u.id), label(u)) for u in users]

        def done(choice: str | None) -> None:
            if choice is not None:
                self.spawn(self.switch_to(int(choice)), group="users")

        current = str(self.viewer.id) if self.viewer else None
        self.push_screen(ChoiceScreen("View as user", choices, current=current), done)

    async def switch_to(self, user_id: int) -> None:
        """Switch the view to a user (by id)."""
        await self._become(await self.manager.get_user(user_id))
        self.everyone = False
        self._show_view()
        await self._reload_sidebar()
        await self._open_initial()
        self.notify(self._view_label())

    def action_toggle_everyone(self) -> None:
        """Admin: list every user's sessions in the sidebar (hidden ones too)."""
        if self.me is None or not self.me.admin:
            self.notify("Only an admin may list everyone's sessions", severity="error")
            return
        self.everyone = not self.everyone
        self._show_view()
        self.spawn(self._reload_sidebar(), group="sidebar")

    def action_feedback(self) -> None:
        """Admin: the answers given feedback; choosing one opens its session at it."""
        if self.me is None or not self.me.admin:
            self.notify("Only an admin may read everyone's feedback", severity="error")
            return
        me = self.me

        async def load() -> list[AnswerFeedback]:
            return await self.manager.list_feedback(me)

        def done(answer: AnswerFeedback | None) -> None:
            if answer is not None:
                self.open_at(answer.session_id, answer.message_id)

        self.push_screen(FeedbackScreen(load), done)

    def action_admin(self) -> None:
        """Admin: users, the queue, feedback and the logs; an answer chosen opens its session."""
        if self.me is None:
            return
        if not self.me.admin:
            self.notify("Only an admin may open the admin screen", severity="error")
            return
        if any(isinstance(screen, AdminScreen) for screen in self.screen_stack):
            return

        def done(answer: AnswerFeedback | None) -> None:
            if answer is not None:
                self.open_at(answer.session_id, answer.message_id)

        self.push_screen(AdminScreen(self.services, self.me), done)

    def action_load_older(self) -> None:
        """Show the previous page of the open session."""
        self.chat.want_older()

    def action_focus_prompt(self) -> None:
        """Focus the prompt."""
        self.hide_sidebar()
        self.prompt.focus()

    def action_focus_sidebar(self) -> None:
        """Focus the session list (on a narrow terminal it takes the place of the chat)."""
        screen = self.screen_stack[0]
        if screen.has_class("-narrow"):
            screen.add_class("-show-sidebar")
        self.sidebar.focus()

    def hide_sidebar(self) -> None:
        """Give a narrow terminal back to the chat after the sidebar was shown."""
        screen = self.screen_stack[0]
        if screen.has_class("-show-sidebar"):
            screen.remove_class("-show-sidebar")
            if self.sidebar.has_focus:
                self.prompt.focus()

    # ---- files --------------------------------------------------------------------------

    def _set_pending(self, files: list[tuple[str, bytes]]) -> None:
        """The files of the next question, and their chips above the prompt."""
        self.pending_files = files
        chips = Text()
        for name, data in files:
            chips.append(f" 📎 {one_line(name)} ", style="reverse")
            chips.append(f" {size_text(len(data))}  ", style="dim")
        if files:
            chips.append("go with your next question", style="italic")
        self.pending_bar.update(chips)
        self.pending_bar.display = bool(files)

    def action_attach(self) -> None:
        """Attach a file (by its path) to the next question."""

        def done(path: str | None) -> None:
            if path:
                self.spawn(self._add_file(path), group="attach")

        self.push_screen(AttachScreen(), done)

    async def _add_file(self, path: str) -> None:
        limit = self.manager.attachment_limits.max_bytes

        def read() -> bytes:
            with open(path, "rb") as file:
                return file.read(limit + 1)  # the core refuses what is longer

        try:
            data = await asyncio.to_thread(read)
        except OSError as exc:
            self.notify(f"cannot attach {path}: {exc.strerror or exc}", severity="error")
            return
        self._set_pending([*self.pending_files, (os.path.basename(path), data)])
        self.prompt.focus()

    def action_remove_files(self) -> None:
        """Send the next question without the files attached so far."""
        self._set_pending([])

    def action_open_file(self) -> None:
        """Open a file of the selected (or last) message: saved to your downloads (in a
        browser, downloaded)."""
        target = self._target()
        if target is None or not target.attachments:
            target = next((m for m in reversed(self.chat.messages()) if m.attachments), None)
        if target is None:
            self.notify("No file in this session", severity="warning")
            return
        if len(target.attachments) == 1:
            self.spawn(self._open_file(target.id, 0), group="open-file")
            return
        choices = [(str(i), one_line(a.name)) for i, a in enumerate(target.attachments)]

        def done(choice: str | None) -> None:
            if choice is not None:
                self.spawn(self._open_file(target.id, int(choice)), group="open-file")

        self.push_screen(ChoiceScreen("Open which file?", choices), done)

    async def _open_file(self, message_id: int, index: int) -> None:
        info, data = await self.manager.attachment(self.actor, message_id, index)
        name = safe_name(info.name)
        if self.is_web:  # served in a browser: the browser opens it
            self.deliver_binary(
                io.BytesIO(data), save_filename=name, mime_type=info.mime, open_method="browser"
            )
            return
        try:
            saved = await asyncio.to_thread(save_download, name, data)
        except OSError as exc:
            self.notify(f"cannot save {one_line(name)}: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"Saved to {one_line(str(saved))}")

    def action_edit_prompt(self) -> None:
        """Write the prompt in $VISUAL / $EDITOR; the text comes back into the prompt, unsent."""
        try:
            with self.suspend():
                edited = click.edit(self.prompt.text, extension=".md")
        except SuspendNotSupported:
            self.notify("This terminal cannot hand over to an editor", severity="warning")
            return
        except click.UsageError as error:  # no editor could be started
            self.notify(error.format_message(), severity="error")
            return
        if edited is not None:
            self.prompt.text = edited.rstrip("\n")
            self.prompt.move_cursor(self.prompt.document.end)
        self.hide_sidebar()
        self.prompt.focus()

    def action_focus_chat(self) -> None:
        """Focus the messages (up/down select one)."""
        self.chat.focus()


def _tokens_of(messages: list[Message]) -> int | None:
    """Tokens used by the last reply that reported usage."""
    for message in reversed(messages):
        if message.role == "assistant" and message.tokens_in is not None:
            return message.tokens_in + (message.tokens_out or 0)
    return None


async def _close(events: AsyncIterator[Event]) -> None:
    closer = getattr(events, "aclose", None)
    if closer is not None:
        try:
            await closer()
        except (Exception, asyncio.CancelledError):
            pass


async def _peek(events: AsyncIterator[Event]) -> Event | None:
    try:
        return await events.__anext__()
    except StopAsyncIteration:
        return None


async def _chain(first: Event | None, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    if first is not None:
        yield first
    async for event in rest:
        yield event


def make_app(
    services: Services,
    *,
    user_ref: str | None = None,
    poll_interval: float = POLL_INTERVAL,
    admin: bool = False,
) -> MschatApp:
    """Build the TUI over the given services (tests pass fakes in); ``admin`` opens the
    admin screen once started."""
    return MschatApp(services, user_ref=user_ref, poll_interval=poll_interval, admin=admin)


def run(services: Services, *, user_ref: str | None = None, admin: bool = False) -> None:
    """Run the TUI until the user quits, then close the services."""
    app = make_app(services, user_ref=user_ref, admin=admin)
    services.live.start()  # `mschat config set` applies here within a second
    try:
        app.run()
    finally:
        asyncio.run(services.aclose())
