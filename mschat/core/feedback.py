"""Feedback on answers: its kinds, and the admin's listing grouped per answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the kinds of feedback, in the order the buttons show them; each of the first three
#: counts once per user and answer, every "other" (a text) counts
KINDS = ("good", "outdated", "inaccurate", "other")


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One user's feedback on an answer."""

    user_name: str
    kind: str
    text: str | None
    created: str


@dataclass(slots=True)
class AnswerFeedback:
    """An answer and every feedback given on it."""

    message_id: int
    session_id: int
    session_title: str
    #: the answer's first characters
    answer: str
    entries: list[FeedbackEntry] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Votes per kind, in button order (kinds without any left out)."""
        found = {kind: sum(e.kind == kind for e in self.entries) for kind in KINDS}
        return {kind: n for kind, n in found.items() if n}

    @property
    def texts(self) -> list[FeedbackEntry]:
        """The "other" feedback, each with its text."""
        return [e for e in self.entries if e.kind == "other"]


def group_feedback(rows: list[dict[str, Any]]) -> list[AnswerFeedback]:
    """The store's ``list_feedback`` rows as one record per answer, in their order."""
    answers: dict[int, AnswerFeedback] = {}
    for row in rows:
        answer = answers.get(row["message_id"])
        if answer is None:
            answer = answers[row["message_id"]] = AnswerFeedback(
                row["message_id"], row["session_id"], row["session_title"], row["answer"]
            )
        answer.entries.append(
            FeedbackEntry(row["user_name"] or "?", row["kind"], row["text"], row["created"])
        )
    return list(answers.values())
