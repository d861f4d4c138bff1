"""Admin: the answers members gave feedback on, with the counts and every text.

:class:`FeedbackList` is the list itself (the admin screen's Feedback tab);
:class:`FeedbackScreen` shows it as a dialog.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
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


def matches(answer: AnswerFeedback, needle: str) -> bool:
    """Whether a (case-folded) filter text is in the session title, answer, names or texts."""
    if not needle:
        return True
    parts = [answer.session_title or "", answer.answer]
    for entry in answer.entries:
        parts += [entry.user_name, entry.kind, entry.text or ""]
    return any(needle in part.casefold() for part in parts)


class FeedbackList(Vertical):
    """Answers with feedback, most recent first, narrowed by a filter; Enter chooses one."""

    DEFAULT_CSS = """
    FeedbackList {
        height: 1fr;
    }
    FeedbackList #answers {
        height: 1fr;
        max-height: 100%;
    }
    """

    class Chosen(Message):
        """An answer was chosen (to open in its session)."""

        def __init__(self, answer: AnswerFeedback) -> None:
            super().__init__()
            self.answer = answer

    def __init__(self, loader: Loader, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.loader = loader
        #: every answer loaded, and those the filter shows
        self.answers: list[AnswerFeedback] = []
        self.shown: list[AnswerFeedback] = []
        self.needle = ""
        self.loaded = False

    def compose(self) -> ComposeResult:
        """A count line and the answers."""
        yield Label("loading…", id="feedback-count", classes="dialog-hint")
        yield OptionList(id="answers")

    def on_mount(self) -> None:
        """Load the feedback off the UI path."""
        self.load()

    @work(exclusive=True, group="feedback")
    async def load(self) -> None:
        """Ask the core for the answers given feedback and list them."""
        try:
            answers = await self.loader()
        except MschatError as error:
            self.query_one("#feedback-count", Label).update(
                plain(f"could not read the feedback: {error}")
            )
            return
        self.answers = answers
        self.loaded = True
        self._show()

    def set_filter(self, text: str) -> None:
        """Show only the answers whose title, text, names or feedback contain ``text``."""
        self.needle = text.strip().casefold()
        if self.loaded:
            self._show()

    def _show(self) -> None:
        options = self.query_one("#answers", OptionList)
        highlighted = options.highlighted
        self.shown = [a for a in self.answers if matches(a, self.needle)]
        options.set_options(Option(answer_prompt(a), id=str(i)) for i, a in enumerate(self.shown))
        if self.shown:
            options.highlighted = min(highlighted or 0, len(self.shown) - 1)
        count = len(self.shown)
        of = f" of {len(self.answers)}" if count != len(self.answers) else ""
        self.query_one("#feedback-count", Label).update(
            f"{count}{of} answer{'s' if len(self.answers) != 1 else ''} with feedback"
            " (most recent first); Enter opens one"
            if self.answers
            else "No feedback yet."
        )

    def focus_answers(self) -> None:
        """Put the cursor on the answers."""
        self.query_one("#answers", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Tell the screen which answer was chosen."""
        event.stop()
        if event.option.id is not None:
            self.post_message(self.Chosen(self.shown[int(event.option.id)]))


class FeedbackScreen(ModalScreen[AnswerFeedback | None]):
    """The feedback list as a dialog: Enter opens an answer; Escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]

    def __init__(self, loader: Loader) -> None:
        super().__init__(classes="dialog-screen")
        self.loader = loader

    @property
    def answers(self) -> list[AnswerFeedback]:
        """The answers listed."""
        return self.query_one(FeedbackList).shown

    def compose(self) -> ComposeResult:
        """Title and the list."""
        with Vertical(classes="dialog -wide -tall", id="feedback-dialog"):
            yield Label("Feedback on answers", classes="dialog-title")
            yield FeedbackList(self.loader)

    def on_mount(self) -> None:
        """Start on the answers."""
        self.query_one(FeedbackList).focus_answers()

    def on_feedback_list_chosen(self, event: FeedbackList.Chosen) -> None:
        """Open the chosen answer in its session."""
        self.dismiss(event.answer)

    def action_cancel(self) -> None:
        """Close."""
        self.dismiss(None)
