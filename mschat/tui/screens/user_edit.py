"""Admin: change a user's status, priority, ignored flag and rate limit through the core."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Switch

from mschat.core.errors import MschatError
from mschat.core.models import Status, User
from mschat.tui.format import one_line, plain
from mschat.tui.screens.user_form import UserFormScreen


class UserEditScreen(UserFormScreen):
    """A user's admin settings; Ctrl+S saves (an error keeps the dialog open), Escape cancels."""

    refused_title = "User not changed"
    refusals = (MschatError, ValueError)

    def compose(self) -> ComposeResult:
        """Status, priority, ignored and rate limit, with Save and Cancel."""
        user = self.user
        with Vertical(classes="dialog", id="user-dialog"):
            yield Label(
                plain(f"User {user.id}: {one_line(user.label)}", newlines=False),
                classes="dialog-title",
            )
            with Horizontal(classes="settings-row"):
                yield Label("status", classes="settings-label")
                yield Select(
                    [(s.value, s.value) for s in Status],
                    value=user.status,
                    allow_blank=False,
                    id="status",
                )
            with Horizontal(classes="settings-row"):
                yield Label("priority (higher first)", classes="settings-label")
                yield Input(str(user.priority), id="priority", type="integer")
            with Horizontal(classes="settings-row"):
                yield Label("ignored", classes="settings-label")
                yield Switch(user.ignored, id="ignored")
            with Horizontal(classes="settings-row"):
                yield Label("rate limit per 6 h", classes="settings-label")
                yield Input(
                    "" if user.rate_limit is None else str(user.rate_limit),
                    id="rate_limit",
                    type="integer",
                    placeholder="empty: the default; 0 blocks",
                )
            yield Label("Ctrl+S saves, Escape cancels", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start on the status."""
        self.query_one("#status", Select).focus()

    def changes(self) -> dict[str, Any]:
        """The settings that differ from the user's current values (as the core takes them)."""
        user = self.user
        priority = self.query_one("#priority", Input).value.strip()
        limit = self.query_one("#rate_limit", Input).value.strip()
        values: dict[str, Any] = {
            "status": self.query_one("#status", Select).value,
            "priority": priority or "0",
            "ignored": self.query_one("#ignored", Switch).value,
            "rate_limit": limit or None,
        }
        current: dict[str, Any] = {
            "status": user.status,
            "priority": str(user.priority),
            "ignored": user.ignored,
            "rate_limit": None if user.rate_limit is None else str(user.rate_limit),
        }
        return {key: value for key, value in values.items() if value != current[key]}

    def saved_text(self, user: User, changes: dict[str, Any]) -> str:
        """Which settings of which user changed."""
        return f"User {user.id} changed: {', '.join(sorted(changes))}"
