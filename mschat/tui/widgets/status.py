"""The status bar: whose view, model, tokens / context window, trimming, streaming.

The bar is one line at any width: when the full form does not fit, it drops
and shortens fields, most expendable first, and the state (idle, streaming,
failed …) is always kept.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from mschat.tui.format import one_line

#: the state while a public session waits for another process's reply
WAITING = "waiting for another reply in this session…"
#: short forms of long states, for narrow terminals
SHORT_STATES = {WAITING: "waiting…"}
SEPARATOR = " │ "
#: one field of the bar: its text and style
Field = tuple[str, str]


def short_state(state: str) -> str:
    """A state in a few cells: ``retrying (attempt 2)`` becomes ``retrying``."""
    return SHORT_STATES.get(state, state.split(" (", 1)[0])


def short_model(name: str) -> str:
    """The model without its provider prefix."""
    return name.rsplit("/", 1)[-1] if name else name


def compact(count: int) -> str:
    """A token count in at most 5 cells: 950, 12.3k, 128k, 1.2M."""
    if count < 1000:
        return str(count)
    if count < 100_000:
        return f"{count / 1000:.1f}k".replace(".0k", "k")
    if count < 1_000_000:
        return f"{count // 1000}k"
    return f"{count / 1_000_000:.1f}M".replace(".0M", "M")


def _state_style(state: str) -> str:
    if state == "streaming":
        return "bold green"
    if state.startswith(("failed", "interrupted")):
        return "bold red"
    if state == WAITING:
        return "bold yellow"
    return "dim"


class StatusBar(Static):
    """One line of state under the chat; each field is a reactive."""

    view_label: reactive[str] = reactive("")
    model: reactive[str] = reactive("")
    tokens: reactive[int | None] = reactive(None)
    context_window: reactive[int | None] = reactive(None)
    trimmed: reactive[int] = reactive(0)
    state: reactive[str] = reactive("idle")

    def layouts(self) -> list[list[Field]]:
        """The bar from fullest to barest, as (text, style) fields; the state is last."""
        model = one_line(self.model) or "—"
        brief_model = short_model(model)
        used = "—" if self.tokens is None else f"{self.tokens:,}"
        window = f"{self.context_window:,}" if self.context_window else "—"
        brief_used = "—" if self.tokens is None else compact(self.tokens)
        brief_window = compact(self.context_window) if self.context_window else "—"
        trimmed: list[Field] = []
        brief_trimmed: list[Field] = []
        if self.trimmed:
            trimmed = [(f"history trimmed ({self.trimmed} older turns left out)", "bold yellow")]
            brief_trimmed = [(f"trimmed {self.trimmed}", "bold yellow")]
        style = _state_style(self.state)
        state, brief_state = (self.state, style), (short_state(self.state), style)
        view: list[Field] = [(f" {one_line(self.view_label)} ", "bold reverse")]
        if not self.view_label:
            view = []
        tokens: Field = (f"tokens: {used} / {window}", "")
        brief_tokens: Field = (f"{brief_used}/{brief_window}", "")
        return [
            [*view, (f"model: {model}", ""), tokens, *trimmed, state],
            [(f"model: {model}", ""), tokens, *trimmed, state],
            [(brief_model, ""), brief_tokens, *brief_trimmed, state],
            [(brief_model, ""), brief_tokens, *brief_trimmed, brief_state],
            [(brief_model, ""), *brief_trimmed, brief_state],
            [(brief_model, ""), brief_state],
        ]

    def render(self) -> Text:
        """The fullest layout that fits the width; at the least the state."""
        width = self.content_size.width
        layouts = self.layouts()
        for fields in layouts:
            if _width(fields) <= width:
                return _join(fields)
        (model, _), state = layouts[-1]
        room = width - _width([state]) - len(SEPARATOR)
        if room >= 4:  # the model cut to what is left beside the state
            return _join([(model[: room - 1] + "…", ""), state])
        return _join([state])


def _width(fields: list[Field]) -> int:
    return sum(cell_len(text) for text, _ in fields) + len(SEPARATOR) * max(len(fields) - 1, 0)


def _join(fields: list[Field]) -> Text:
    text = Text()
    for index, (field, style) in enumerate(fields):
        if index:
            text.append(SEPARATOR, style="dim")
        text.append(field, style=style)
    return text
