"""Admin: the answers members gave feedback on, with the counts and every text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from mschat.core.errors import MschatError
from mschat.core.feedback import KINDS, AnswerFeedback
from mschat.tui.format import one_line, plain, short_time

Loader = Callable[[], Awaitable[list[AnswerFeedback]]]

#: how the counts are labelled, as on the Discord buttons
KIND_LABELS = dict(zip(KINDS, ("👍 good", "outdated", "inaccurate", "other"), strict=True))


def answer_prompt(answer: AnswerFeedback) -> Text:
    """Session and counts, the answer's start, then each "other" text with its author."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(answer.session_title or "(untitled)"), style="bold")
    text.append(f" · answer #{answer.message_id} · ", style="dim")
    counts = answer.counts
    text.append(
        " · ".join(f"{KIND_LABELS[kind]} {counts.get(kind, 0)}" for kind in KINDS),
        style="bold yellow",
    )
    text.append("\n  ")
    text.append(one_line(answer.answer), style="dim italic")
    for entry in answer.texts:
        text.append(f"\n  {short_time(entry.created)} ", style="dim")
        text.append(one_line(entry.user_name), style="bold")
        text.append(": ")
        text.append(one_line(entry.text or "(empty)"))
    return text


class FeedbackScreen(ModalScreen[AnswerFeedback | None]):
    """Answers with feedback, most recent first; Enter opens one; Escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]
    DEFAULT_CSS = """
    #feedback-dialog #answers {
        height: 1fr;
        max-height: 100%;
    }
    """

    def __init__(self, loader: Loader) -> None:
        super().__init__(classes="dialog-screen")
        self.loader = loader
        self.answers: list[AnswerFeedback] = []

    def compose(self) -> ComposeResult:
        """Title, a count line and the answers."""
        with Vertical(classes="dialog -wide -tall", id="feedback-dialog"):
            yield Label("Feedback on answers", classes="dialog-title")
            yield Label("loading…", id="feedback-count", classes="dialog-hint")
            yield OptionList(id="answers")

    def on_mount(self) -> None:
        """Load the feedback off the UI path."""
        self.query_one("#answers", OptionList).focus()
        self.load()

    @work(exclusive=True, group="feedback")
    async def load(self) -> None:
        """Ask the core for the answers given feedback and list them."""
        count = self.query_one("#feedback-count", Label)
        try:
            answers = await self.loader()
        except MschatError as error:
            count.update(plain(f"could not read the feedback: {error}"))
            return
        self.answers = answers
        options = self.query_one("#answers", OptionList)
        options.set_options(Option(answer_prompt(a), id=str(i)) for i, a in enumerate(answers))
        if answers:
            options.highlighted = 0
        count.update(
            f"{len(answers)} answer{'s' if len(answers) != 1 else ''} with feedback"
            " (most recent first); Enter opens one"
            if answers
            else "No feedback yet."
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Open the chosen answer in its session."""
        event.stop()
        if event.option.id is not None:
            self.dismiss(self.answers[int(event.option.id)])

    def action_cancel(self) -> None:
        """Close."""
        self.dismiss(None)
