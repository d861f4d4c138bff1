"""The multi-line prompt: Enter sends, Ctrl+J / Shift+Enter / Alt+Enter insert a newline."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

#: keys that insert a newline instead of sending
NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter", "newline")


class PromptArea(TextArea):
    """A TextArea that posts ``Submitted`` on Enter."""

    @dataclass
    class Submitted(Message):
        """The user pressed Enter with some text."""

        prompt: PromptArea
        text: str

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self, self.text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)
