"""The status bar: whose view, model, tokens / context window, trimming, streaming."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    """One line of state under the chat; each field is a reactive."""

    view_label: reactive[str] = reactive("")
    model: reactive[str] = reactive("")
    tokens: reactive[int | None] = reactive(None)
    context_window: reactive[int | None] = reactive(None)
    trimmed: reactive[int] = reactive(0)
    state: reactive[str] = reactive("idle")

    def render(self) -> Text:
        """Join the fields with separators."""
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {self.view_label} ", style="bold reverse")
        text.append(f"  model: {self.model or '—'}")
        used = "—" if self.tokens is None else f"{self.tokens:,}"
        window = "—" if not self.context_window else f"{self.context_window:,}"
        text.append(f"  │  tokens: {used} / {window}")
        if self.trimmed:
            text.append(
                f"  │  history trimmed ({self.trimmed} older turns left out)", style="bold yellow"
            )
        style = (
            "bold green"
            if self.state == "streaming"
            else ("bold red" if self.state.startswith(("failed", "interrupted")) else "dim")
        )
        text.append(f"  │  {self.state}", style=style)
        return text
