"""The session sidebar: an OptionList fed pages of session metadata (never bodies)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from mschat.core.models import Session
from mschat.tui.format import one_line, session_mark, short_time, title_of

#: sessions fetched per page; more pages load as the cursor nears the end
PAGE_SIZE = 100


def session_prompt(session: Session, *, show_creator: bool = False) -> Text:
    """Two lines: mark and title, then last activity, model (and creator).

    The list's CSS cuts each line to the sidebar's width.
    """
    text = Text()
    text.append(f"{session_mark(session)} ", style="bold")
    text.append(title_of(session), style="bold")
    details = [short_time(session.updated), one_line(session.model or "default model")]
    if show_creator and session.creator_name:
        details.insert(1, one_line(session.creator_name))
    text.append("\n   " + " · ".join(details), style="dim")
    return text


class SessionList(OptionList):
    """Sessions, most recent first; asks for the next page near the end of the list."""

    @dataclass
    class MoreWanted(Message):
        """The cursor is near the end of the loaded sessions."""

        session_list: SessionList
        offset: int

    @dataclass
    class SessionChosen(Message):
        """A session was selected in the sidebar."""

        session_list: SessionList
        session_id: int

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.sessions: list[Session] = []
        self.exhausted = False
        self.loading = False
        self.show_creator = False
        self.current_id: int | None = None
        self._placed: tuple[Size, Size, Size] | None = None

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        """Skip the scrollbar refresh when the layout placed the list exactly as before.

        An OptionList's own virtual height never equals the one layout passes in, so
        Textual would repaint the sidebar's scrollbar on every layout of the screen
        (each update of a streaming reply); the list updates it itself when it changes.
        """
        placed = (size, virtual_size, container_size)
        if placed == self._placed:
            return False
        self._placed = placed
        return super()._size_updated(size, virtual_size, container_size, layout)

    def _option(self, session: Session) -> Option:
        return Option(session_prompt(session, show_creator=self.show_creator), id=str(session.id))

    def set_sessions(self, sessions: list[Session], *, exhausted: bool) -> None:
        """Replace every loaded session (first page, or a refresh)."""
        self.sessions = list(sessions)
        self.exhausted = exhausted
        self.set_options(self._option(s) for s in self.sessions)
        self.highlight_current()

    def add_page(self, sessions: list[Session], *, exhausted: bool) -> None:
        """Append a further page (skipping any session already listed)."""
        known = {s.id for s in self.sessions}
        fresh = [s for s in sessions if s.id not in known]
        self.sessions.extend(fresh)
        self.exhausted = exhausted
        self.add_options(self._option(s) for s in fresh)

    def merge_first_page(self, page: list[Session]) -> None:
        """Refresh the top of the list after a change, keeping later pages loaded."""
        ids = {s.id for s in page}
        rest = [s for s in self.sessions[len(page) :] if s.id not in ids]
        if page and len(page) >= PAGE_SIZE:
            last = (page[-1].updated, page[-1].id)
            rest = [s for s in rest if (s.updated, s.id) < last]
        else:
            rest = []
        self.set_sessions(page + rest, exhausted=self.exhausted or len(page) < PAGE_SIZE)

    def upsert(self, session: Session) -> None:
        """Show a changed or new session in place (or at the top when new)."""
        for index, known in enumerate(self.sessions):
            if known.id == session.id:
                self.sessions[index] = session
                self.replace_option_prompt(
                    str(session.id), session_prompt(session, show_creator=self.show_creator)
                )
                return
        self.sessions.insert(0, session)
        self.set_sessions(self.sessions, exhausted=self.exhausted)

    def drop(self, session_id: int) -> None:
        """Remove a deleted or hidden session."""
        before = len(self.sessions)
        self.sessions = [s for s in self.sessions if s.id != session_id]
        if len(self.sessions) != before:
            self.remove_option(str(session_id))

    def highlight_current(self) -> None:
        """Put the cursor on the open session, when it is loaded."""
        if self.current_id is None:
            return
        for index, session in enumerate(self.sessions):
            if session.id == self.current_id:
                self.highlighted = index
                return

    def set_current(self, session_id: int | None) -> None:
        """Mark the open session."""
        self.current_id = session_id
        self.highlight_current()

    def _maybe_more(self) -> None:
        if self.exhausted or self.loading:
            return
        near = self.highlighted is not None and self.highlighted >= len(self.sessions) - 10
        scrolled = self.max_scroll_y > 0 and self.scroll_y >= self.max_scroll_y - 4
        if near or scrolled:
            self.loading = True
            self.post_message(self.MoreWanted(self, len(self.sessions)))

    def watch_highlighted(self, highlighted: int | None) -> None:
        """Keep the cursor in view and ask for more near the end."""
        super().watch_highlighted(highlighted)
        self._maybe_more()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Ask for more when scrolled to the bottom."""
        super().watch_scroll_y(old_value, new_value)
        self._maybe_more()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Translate the option into a session id."""
        event.stop()
        if event.option.id is not None:
            self.post_message(self.SessionChosen(self, int(event.option.id)))
