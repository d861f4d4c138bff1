"""What the dialogs that change a user share: Save/Cancel, Ctrl+S, saving through the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from textual import work
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Button

from mschat.core.errors import MschatError
from mschat.core.models import User

Saver = Callable[[dict[str, Any]], Awaitable[User]]


class UserFormScreen(ModalScreen[User | None]):
    """A user's settings in a form; Ctrl+S saves (a refusal keeps it open), Escape cancels.

    Subclasses compose the fields and say what changed (:meth:`changes`).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]
    #: the title of the notice when the core refuses a value
    refused_title: ClassVar[str] = "Not saved"
    #: the errors that mean a value was refused (the form stays open)
    refusals: ClassVar[tuple[type[Exception], ...]] = (MschatError,)

    def __init__(self, user: User, saver: Saver) -> None:
        super().__init__(classes="dialog-screen")
        self.user = user
        self.saver = saver

    def changes(self) -> dict[str, Any]:
        """The settings the form changes (only those that differ)."""
        raise NotImplementedError

    def saved_text(self, user: User, changes: dict[str, Any]) -> str:
        """The notice once saved."""
        return "Settings saved"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Save or cancel by button."""
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_save(self) -> None:
        """Store the changes through the core."""
        self.save(self.changes())

    @work(exclusive=True, group="user-form")
    async def save(self, changes: dict[str, Any]) -> None:
        """Store off the UI path; a refused value is reported and the form stays."""
        if not changes:
            self.dismiss(None)
            return
        try:
            user = await self.saver(changes)
        except self.refusals as error:
            self.notify(str(error), title=self.refused_title, severity="error")
            return
        self.notify(self.saved_text(user, changes))
        self.dismiss(user)

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)
