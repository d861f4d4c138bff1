"""The admin screen: users, the queue, feedback and the operations logs, with filters.

Every tab loads through the core in a worker (the UI never waits on the
database) and is loaded again when the store changes (the app's change feed
calls :meth:`AdminScreen.store_changed`), when Ctrl+R is pressed, and, for the
queue, every second while it is shown (queue entries send no change notice).
A text filter narrows the rows already loaded; a period loads them again.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Input,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
)

from mschat.core.answer.queue import QueueState
from mschat.core.costs import Cost, parse_since
from mschat.core.errors import MschatError
from mschat.core.feedback import AnswerFeedback
from mschat.core.models import User
from mschat.core.services import Services
from mschat.tui.format import one_line, plain
from mschat.tui.screens.admin_tables import (
    LOG_COLUMNS,
    PERIODS,
    USER_COLUMNS,
    cell,
    log_row,
    matches,
    user_row,
)
from mschat.tui.screens.feedback import FeedbackList
from mschat.tui.screens.user_edit import UserEditScreen

#: the tabs, by pane id: users, queue, feedback, and the logs by their table's name
TABS = ("users", "queue", "feedback", "interactions", "api_calls")
#: the newest log rows loaded (the filter narrows those)
LOG_LIMIT = 500
#: seconds between two looks at the queue while its tab is shown
QUEUE_EVERY = 1.0
#: the widest a column is drawn (longer cells end in "…")
MAX_WIDTH = 48
DEFAULT_PERIOD = {"users": "30d", "interactions": "24h", "api_calls": "24h"}


def _filter_row(tab: str, hint: str, *, period: bool) -> Horizontal:
    """A tab's filter row: a text filter, and a period for costs and logs."""
    widgets: list[Any] = [Input(placeholder=hint, id=f"{tab}-filter", classes="admin-filter")]
    if period:
        widgets.append(
            Select(
                PERIODS,
                value=DEFAULT_PERIOD[tab],
                allow_blank=False,
                id=f"{tab}-period",
                classes="admin-period",
            )
        )
    return Horizontal(*widgets, classes="admin-filters")


class AdminScreen(Screen[AnswerFeedback | None]):
    """Users, queue, feedback, interactions and API calls; Escape closes.

    Dismissed with the answer chosen on the Feedback tab (the app opens it in its
    session), else with None.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]
    DEFAULT_CSS = """
    AdminScreen #admin-title {
        height: 1;
        background: $primary;
        color: $text;
        padding: 0 1;
    }
    AdminScreen TabbedContent {
        height: 1fr;
    }
    AdminScreen TabPane {
        height: 1fr;
        padding: 0 1;
    }
    AdminScreen .admin-filters {
        height: auto;
    }
    AdminScreen .admin-filter {
        width: 1fr;
    }
    AdminScreen .admin-period {
        width: 24;
    }
    AdminScreen .admin-count {
        height: 1;
        color: $text-muted;
    }
    AdminScreen DataTable {
        height: 1fr;
    }
    AdminScreen #queue-state {
        height: auto;
        margin: 1 0;
    }
    AdminScreen #queue-buttons {
        height: auto;
    }
    AdminScreen #queue-buttons Button {
        margin-right: 2;
    }
    """

    def __init__(self, services: Services, admin: User) -> None:
        super().__init__()
        self.services = services
        self.manager = services.manager
        self.admin = admin
        self.users: list[User] = []
        self.costs: dict[int, Cost] = {}
        self.queue: QueueState | None = None
        self.logs: dict[str, list[dict[str, Any]]] = {"interactions": [], "api_calls": []}
        #: tabs loaded at least once, and those the store changed since
        self.loaded: set[str] = set()
        self.stale: set[str] = set()
        self._last_change = 0.0

    # ---- layout ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """A title, the tabs (each with its filter row) and the footer."""
        yield Static(
            Text(f"mschat admin · {one_line(self.admin.name)} · Escape closes · Ctrl+R refreshes"),
            id="admin-title",
        )
        with TabbedContent(id="admin-tabs", initial="users"):
            with TabPane("Users", id="users"):
                yield _filter_row("users", "filter: name, kind, status, model…", period=True)
                yield Label("loading…", id="users-count", classes="admin-count")
                yield DataTable(id="users-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Queue", id="queue"):
                yield _filter_row("queue", "filter: provider…", period=False)
                yield Static("loading…", id="queue-state")
                yield DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
                with Horizontal(id="queue-buttons"):
                    yield Button("Pause answering", id="pause", variant="warning")
                    yield Button("Resume answering", id="resume", variant="success")
            with TabPane("Feedback", id="feedback"):
                yield _filter_row("feedback", "filter: session, answer, name, text…", period=False)
                yield FeedbackList(self._load_feedback, id="feedback-list")
            with TabPane("Interactions", id="interactions"):
                yield _filter_row(
                    "interactions", "filter: user, source, kind, name, status…", period=True
                )
                yield Label("loading…", id="interactions-count", classes="admin-count")
                yield DataTable(id="interactions-table", cursor_type="row", zebra_stripes=True)
            with TabPane("API calls", id="api_calls"):
                yield _filter_row("api_calls", "filter: user, model, status, error…", period=True)
                yield Label("loading…", id="api_calls-count", classes="admin-count")
                yield DataTable(id="api_calls-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Set the columns, load the first tab, look at the queue while it is shown."""
        self.query_one("#users-table", DataTable).add_columns(*USER_COLUMNS)
        self.query_one("#queue-table", DataTable).add_columns("PROVIDER", "RUNNING")
        for table in ("interactions", "api_calls"):
            headers = [header for header, _ in LOG_COLUMNS[table]]
            self.query_one(f"#{table}-table", DataTable).add_columns(*headers)
        self.loaded.add("feedback")  # the list loads itself when mounted
        self.reload("users")
        self.query_one("#users-table", DataTable).focus()
        self.set_interval(QUEUE_EVERY, self._tick)

    @property
    def active_tab(self) -> str:
        """The id of the tab shown."""
        return str(self.query_one("#admin-tabs", TabbedContent).active)

    # ---- loading ----------------------------------------------------------------

    def reload(self, tab: str) -> None:
        """Load a tab again through the core (off the UI path)."""
        self.stale.discard(tab)
        self.loaded.add(tab)
        if tab == "feedback":
            self.query_one(FeedbackList).load()
            return
        if tab == "users":
            loading = self._load_users()
        elif tab == "queue":
            loading = self._load_queue()
        else:
            loading = self._load_log(tab)
        self.run_worker(loading, group=f"admin-{tab}", exclusive=True)

    def store_changed(self) -> None:
        """The store changed: the tab shown loads again, the others when next shown."""
        if not self.is_mounted:  # pushed, not composed yet: it loads when mounted
            return
        self.stale.update(TABS)
        now = time.monotonic()
        # a busy deployment changes the store all the time: at most one reload a second
        if now - self._last_change >= 1.0:
            self._last_change = now
            self.reload(self.active_tab)

    def _tick(self) -> None:
        active = self.active_tab
        if active == "queue" or active in self.stale:
            self.reload(active)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Load a tab when first shown, or when the store changed meanwhile."""
        tab = str(event.pane.id)
        if tab not in self.loaded or tab in self.stale:
            self.reload(tab)

    def _period(self, tab: str) -> str | None:
        value = self.query_one(f"#{tab}-period", Select).value
        return None if value in ("all", Select.BLANK) else parse_since(str(value))

    def _needle(self, tab: str) -> str:
        return self.query_one(f"#{tab}-filter", Input).value.strip().casefold()

    def _failed(self, label: str, error: Exception) -> None:
        if not isinstance(error, MschatError):
            self.log.error(repr(error))
        widget = self.query_one(label)
        if isinstance(widget, Label | Static):
            widget.update(plain(f"could not load: {error}", newlines=False))

    async def _load_users(self) -> None:
        try:
            users = await self.manager.list_users()
            costs = await self.manager.spending_per_user(self.admin, since=self._period("users"))
        except Exception as error:
            self._failed("#users-count", error)
            return
        self.users, self.costs = users, costs
        self._show_users()

    async def _load_queue(self) -> None:
        try:
            self.queue = await self.manager.queue_status(self.admin)
        except Exception as error:
            self._failed("#queue-state", error)
            return
        self._show_queue()

    async def _load_log(self, table: str) -> None:
        try:
            rows = await self.manager.list_log(
                self.admin, table, since=self._period(table), limit=LOG_LIMIT
            )
        except Exception as error:
            self._failed(f"#{table}-count", error)
            return
        self.logs[table] = rows
        self._show_log(table)

    async def _load_feedback(self) -> list[AnswerFeedback]:
        return await self.manager.list_feedback(self.admin, limit=LOG_LIMIT)

    # ---- showing ----------------------------------------------------------------

    def _fill(self, table_id: str, rows: list[tuple[str, list[Text]]]) -> None:
        """Replace a table's rows, keeping the cursor on the same row when it is still there.

        The columns get their widths here, from the cells: a DataTable that measures
        them itself, later, may draw the new rows at the old widths meanwhile.
        """
        table = self.query_one(table_id, DataTable)
        selected = None
        if table.row_count and table.cursor_row >= 0:
            selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        headers = [str(column.label) for column in table.ordered_columns]
        widths = [len(header) for header in headers]
        for _, cells in rows:
            widths = [max(w, cell_len(c.plain)) for w, c in zip(widths, cells, strict=True)]
        table.clear(columns=True)
        for header, width in zip(headers, widths, strict=True):
            table.add_column(header, width=min(width, MAX_WIDTH), key=header)
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if selected is not None and selected in {key for key, _ in rows}:
            table.move_cursor(row=table.get_row_index(selected))

    @staticmethod
    def _count(shown: int, total: int, what: str) -> str:
        of = f" of {total}" if shown != total else ""
        return f"{shown}{of} {what}{'s' if total != 1 else ''}"

    def _show_users(self) -> None:
        needle = self._needle("users")
        currency = self.manager.currency
        default = self.manager.defaults.get("rate_limit")
        rows = []
        for user in self.users:
            cells = user_row(user, self.costs.get(user.id), currency, default)
            if matches(cells, needle, user.external_id):
                rows.append((str(user.id), cells))
        self._fill("#users-table", rows)
        period = {value: label for label, value in PERIODS}.get(
            str(self.query_one("#users-period", Select).value), ""
        )
        self.query_one("#users-count", Label).update(
            self._count(len(rows), len(self.users), "user")
            + f" · cost: {period} · Enter changes a user"
        )

    def _show_queue(self) -> None:
        state = self.queue
        if state is None:
            return
        needle = self._needle("queue")
        paused = f"yes (new questions: {state.when_paused})" if state.paused else "no"
        wait = "none" if state.oldest_wait is None else f"{state.oldest_wait:.1f} s"
        self.query_one("#queue-state", Static).update(
            Text(
                f"paused: {paused}\nwaiting: {state.waiting}\n"
                f"running: {sum(state.running.values())}\noldest wait: {wait}"
            )
        )
        rows = [
            (provider, [cell(provider), cell(count)])
            for provider, count in sorted(state.running.items())
            if matches([cell(provider)], needle)
        ]
        self._fill("#queue-table", rows)

    def _show_log(self, table: str) -> None:
        needle = self._needle(table)
        rows = []
        for row in self.logs[table]:
            cells = log_row(table, row)
            if matches(cells, needle, row.get("payload") if table == "interactions" else None):
                rows.append((str(row["id"]), cells))
        self._fill(f"#{table}-table", rows)
        what = "interaction" if table == "interactions" else "API call"
        shown = self._count(len(rows), len(self.logs[table]), what)
        more = f" (the newest {LOG_LIMIT})" if len(self.logs[table]) >= LOG_LIMIT else ""
        self.query_one(f"#{table}-count", Label).update(shown + more)

    # ---- filters ----------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        """A text filter narrows the rows already loaded."""
        tab = str(event.input.id).removesuffix("-filter")
        if tab == "users":
            self._show_users()
        elif tab == "queue":
            self._show_queue()
        elif tab == "feedback":
            self.query_one(FeedbackList).set_filter(event.value)
        elif tab in self.logs:
            self._show_log(tab)

    def on_select_changed(self, event: Select.Changed) -> None:
        """A period loads its tab again."""
        tab = str(event.select.id).removesuffix("-period")
        if tab in TABS and tab in self.loaded:
            self.reload(tab)

    # ---- actions ----------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a user: change their status, priority, ignored flag or rate limit."""
        if event.data_table.id != "users-table" or event.row_key.value is None:
            return
        user_id = int(event.row_key.value)
        user = next((u for u in self.users if u.id == user_id), None)
        if user is None:
            return

        async def save(changes: dict[str, Any]) -> User:
            return await self.manager.update_user(self.admin, user_id, **changes)

        def done(changed: User | None) -> None:
            if changed is not None:
                self.reload("users")

        self.app.push_screen(UserEditScreen(user, save), done)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Pause or resume answering for the whole deployment."""
        if event.button.id in ("pause", "resume"):
            self._set_paused(event.button.id == "pause")

    @work(exclusive=True, group="admin-pause")
    async def _set_paused(self, paused: bool) -> None:
        try:
            mode = await self.services.set_paused(self.admin, paused)
        except MschatError as error:
            self.notify(str(error), severity="error")
            return
        if paused:
            follow = "wait in the queue" if mode == "hold" else 'get a "paused" reply'
            self.notify(f"Paused: running answers finish; new questions {follow}")
        else:
            self.notify("Resumed")
        self.reload("queue")

    def on_feedback_list_chosen(self, event: FeedbackList.Chosen) -> None:
        """Open the chosen answer in its session."""
        self.dismiss(event.answer)

    def action_reload(self) -> None:
        """Load the tab shown again."""
        self.reload(self.active_tab)

    def action_close(self) -> None:
        """Back to the chat."""
        self.dismiss(None)
