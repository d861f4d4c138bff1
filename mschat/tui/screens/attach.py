"""Attach a file by its path: the path completes as you type (Tab or → takes it)."""

from __future__ import annotations

import os
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label

from mschat.tui.format import plain

#: entries of one folder looked at for a completion (a huge folder stays fast)
MAX_ENTRIES = 2000


class PathSuggester(Suggester):
    """Completes the last part of a path from the files and folders that exist."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        """The first entry of the folder typed so far that starts with the part typed."""
        if not value:
            return None
        head, sep, start = value.rpartition(os.sep)
        folder = head + sep  # "", "docs/", "/" or "~/Pictures/"
        try:
            with os.scandir(os.path.expanduser(folder) or ".") as entries:
                names = sorted(
                    entry.name + (os.sep if entry.is_dir() else "")
                    for _, entry in zip(range(MAX_ENTRIES), entries, strict=False)
                    if entry.name.startswith(start) and (start or not entry.name.startswith("."))
                )
        except OSError:
            return None
        if not names or names[0] == start:
            return None
        return folder + names[0]


class AttachScreen(ModalScreen[str | None]):
    """Ask for the path of a file to attach; Enter takes it, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "complete", "Complete", show=False, priority=True),
    ]

    def compose(self) -> ComposeResult:
        """Title, path and a hint."""
        with Vertical(classes="dialog -wide"):
            yield Label(plain("Attach a file (an image or a text file)"), classes="dialog-title")
            yield Input(
                placeholder="path, e.g. ~/Pictures/cat.png", suggester=PathSuggester(), id="path"
            )
            yield Label("Tab completes, Enter attaches, Escape cancels", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Take the path typed."""
        path = event.value.strip()
        self.dismiss(os.path.expanduser(path) if path else None)

    def action_complete(self) -> None:
        """Take the suggested completion (as → does at the end of the line)."""
        field = self.query_one("#path", Input)
        field.cursor_position = len(field.value)
        field.action_cursor_right()  # at the end, → takes the suggestion

    def action_cancel(self) -> None:
        """Attach nothing."""
        self.dismiss(None)
