"""Full-text search across every visible session; choosing a hit jumps to the message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from mschat.core.errors import MschatError
from mschat.core.models import SearchHit
from mschat.tui.format import one_line, plain, short_time

Searcher = Callable[[str], Awaitable[list[SearchHit]]]


def hit_prompt(hit: SearchHit) -> Text:
    """Session title, role and time, then the snippet with the matched terms highlighted."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(hit.session_title), style="bold")
    text.append(f"  {hit.role} · {short_time(hit.created)}\n", style="dim")
    for part, matched in hit.parts():
        text.append(one_line(part), style="bold yellow" if matched else "")
    return text


class SearchScreen(ModalScreen[SearchHit | None]):
    """Type to search (FTS5); Enter on a hit jumps to it; Escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]

    def __init__(self, searcher: Searcher, *, query: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.searcher = searcher
        self.initial = query
        self.hits: list[SearchHit] = []

    def compose(self) -> ComposeResult:
        """Query box, result count and hits."""
        with Vertical(classes="dialog -wide -tall", id="search-dialog"):
            yield Label("Search all sessions", classes="dialog-title")
            yield Input(self.initial, placeholder="words to find…", id="query")
            yield Label("", id="search-count", classes="dialog-hint")
            yield OptionList(id="hits")

    def on_mount(self) -> None:
        """Focus the query box (and search at once when it has text)."""
        self.query_one("#query", Input).focus()
        if self.initial:
            self.run_search(self.initial)

    def on_input_changed(self, event: Input.Changed) -> None:
        """Search as the user types (the previous search is cancelled)."""
        self.run_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the query box moves to the hits."""
        event.stop()
        hits = self.query_one("#hits", OptionList)
        if hits.option_count:
            hits.focus()
            hits.highlighted = 0

    @work(exclusive=True, group="search")
    async def run_search(self, text: str) -> None:
        """Ask the store (off the UI path) and show the hits."""
        count = self.query_one("#search-count", Label)
        if not text.strip():
            self.hits = []
            self.query_one("#hits", OptionList).clear_options()
            count.update("")
            return
        try:
            hits = await self.searcher(text)
        except MschatError as error:
            count.update(plain(f"search failed: {error}"))
            return
        self.hits = hits
        options = self.query_one("#hits", OptionList)
        options.set_options(Option(hit_prompt(h), id=str(i)) for i, h in enumerate(hits))
        count.update(
            f"{len(hits)} hit{'s' if len(hits) != 1 else ''}"
            + (" (newest first; refine to see older)" if len(hits) >= 50 else "")
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Jump to the chosen hit."""
        event.stop()
        if event.option.id is not None:
            self.dismiss(self.hits[int(event.option.id)])

    def action_cancel(self) -> None:
        """Close without jumping."""
        self.dismiss(None)
