"""Small modal dialogs: confirm, text input (one or several lines), choose one option.

Titles, labels and values may hold outside text (session titles, user names,
message bodies): each is shown through ``visible`` and never parsed as markup.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, TextArea
from textual.widgets.option_list import Option

from mschat.tui.format import one_line, plain
from mschat.visible import visible


class ConfirmScreen(ModalScreen[bool]):
    """Ask yes or no; Enter/y confirms, Escape/n cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "Cancel"),
        Binding("y", "answer(True)", "Confirm"),
    ]

    def __init__(self, question: str, *, confirm: str = "Delete") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        """Question and two buttons."""
        with Vertical(classes="dialog"):
            yield Label(plain(self.question), classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm, variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Focus the safe choice."""
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Answer by button."""
        self.dismiss(event.button.id == "confirm")

    def action_answer(self, value: bool) -> None:
        """Answer by key."""
        self.dismiss(value)


class TextInputScreen(ModalScreen[str | None]):
    """Edit a text; Enter (one line) or Ctrl+S (several lines) saves, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(
        self, title: str, value: str = "", *, multiline: bool = False, placeholder: str = ""
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.value = value
        self.multiline = multiline
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        """Title, editor and buttons."""
        with Vertical(classes="dialog -wide" if self.multiline else "dialog"):
            yield Label(plain(self.title_text), classes="dialog-title")
            if self.multiline:
                yield TextArea(visible(self.value), id="value", classes="dialog-textarea")
                yield Label("Ctrl+S saves, Escape cancels", classes="dialog-hint")
            else:
                yield Input(one_line(self.value), placeholder=self.placeholder, id="value")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Focus the editor."""
        self.query_one("#value").focus()

    def _value(self) -> str:
        widget = self.query_one("#value")
        return widget.text if isinstance(widget, TextArea) else widget.value  # type: ignore[attr-defined]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a one-line input saves."""
        event.stop()
        self.dismiss(self._value())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Save or cancel by button."""
        self.dismiss(self._value() if event.button.id == "save" else None)

    def action_save(self) -> None:
        """Save."""
        self.dismiss(self._value())

    def action_cancel(self) -> None:
        """Cancel."""
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of several (id, label) options; Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, choices: list[tuple[str, str]], *, current: str | None = None
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.choices = choices
        self.current = current

    def compose(self) -> ComposeResult:
        """Title and the options."""
        with Vertical(classes="dialog -wide"):
            yield Label(plain(self.title_text), classes="dialog-title")
            yield OptionList(
                *[Option(plain(label, newlines=False), id=key) for key, label in self.choices],
                id="choices",
            )

    def on_mount(self) -> None:
        """Focus the list with the current value highlighted."""
        options = self.query_one("#choices", OptionList)
        options.focus()
        for index, (key, _) in enumerate(self.choices):
            if key == self.current:
                options.highlighted = index

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Answer with the chosen id."""
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Cancel."""
        self.dismiss(None)
