"""The user settings screen: every user setting, saved through the core."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Switch, TextArea

from mschat.core.models import Status, User
from mschat.tui.format import one_line, plain
from mschat.tui.screens.user_form import Saver, UserFormScreen
from mschat.visible import visible

DEFAULT_MODEL = "(default)"


class SettingsScreen(UserFormScreen):
    """Edit a user's settings; Ctrl+S saves (errors keep the screen open), Escape cancels."""

    refused_title = "Settings not saved"

    def __init__(self, user: User, models: list[str], saver: Saver) -> None:
        super().__init__(user, saver)
        self.models = models

    def compose(self) -> ComposeResult:
        """One row per setting."""
        user = self.user
        models = list(dict.fromkeys([*self.models, *([user.model] if user.model else [])]))
        with Vertical(classes="dialog -wide -tall", id="settings-dialog"):
            yield Label(plain(f"Settings of {one_line(user.label)}"), classes="dialog-title")
            with VerticalScroll(id="settings-fields"):
                yield Label("Default system message")
                yield TextArea(
                    visible(user.system_msg or ""), id="system_msg", classes="settings-system"
                )
                with Horizontal(classes="settings-row"):
                    yield Label("max_tokens", classes="settings-label")
                    yield Input(str(user.max_tokens), id="max_tokens", type="integer")
                with Horizontal(classes="settings-row"):
                    yield Label("temperature (0–2)", classes="settings-label")
                    yield Input(f"{user.temperature:g}", id="temperature", type="number")
                with Horizontal(classes="settings-row"):
                    yield Label("show public sessions", classes="settings-label")
                    yield Switch(user.show_public, id="show_public")
                with Horizontal(classes="settings-row"):
                    yield Label("attach new sessions", classes="settings-label")
                    yield Switch(user.attach, id="attach")
                with Horizontal(classes="settings-row"):
                    yield Label("default model", classes="settings-label")
                    yield Select(
                        [
                            (DEFAULT_MODEL, DEFAULT_MODEL),
                            *((plain(m, newlines=False), m) for m in models),
                        ],
                        value=user.model or DEFAULT_MODEL,
                        allow_blank=False,
                        id="model",
                    )
                with Horizontal(classes="settings-row"):
                    yield Label("status", classes="settings-label")
                    yield Select(
                        [(s.value, s.value) for s in Status],
                        value=user.status,
                        allow_blank=False,
                        id="status",
                    )
            yield Label("Ctrl+S saves, Escape cancels", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Focus the first field."""
        self.query_one("#system_msg", TextArea).focus()

    def changes(self) -> dict[str, Any]:
        """The settings that differ from the user's current values."""
        user = self.user
        model = self.query_one("#model", Select).value
        values: dict[str, Any] = {
            "system_msg": self.query_one("#system_msg", TextArea).text.strip() or None,
            "max_tokens": self.query_one("#max_tokens", Input).value.strip(),
            "temperature": self.query_one("#temperature", Input).value.strip(),
            "show_public": self.query_one("#show_public", Switch).value,
            "attach": self.query_one("#attach", Switch).value,
            "model": None if model == DEFAULT_MODEL else model,
            "status": self.query_one("#status", Select).value,
        }
        current = {
            "system_msg": visible(user.system_msg or "").strip() or None,
            "max_tokens": str(user.max_tokens),
            "temperature": f"{user.temperature:g}",
            "show_public": user.show_public,
            "attach": user.attach,
            "model": user.model or None,
            "status": user.status,
        }
        return {key: value for key, value in values.items() if value != current[key]}
