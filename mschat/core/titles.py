"""Session titles: a short first question as it was asked, a longer one shortened."""

from __future__ import annotations

import re

#: the title of a session made empty (TUI Ctrl+N, the API); its first question renames it
DEFAULT_TITLE = "New session"
#: a session titled after a question moderation flagged is renamed this
FLAGGED_TITLE = "Flagged question"
MAX_TITLE = 50
#: a first sentence shorter than this says too little to be the title on its own
MIN_SENTENCE = 12

#: control characters and lone surrogates: a title made by mschat holds text only
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s")
_TRAILING = " ,;:-–—([{\"'"


def make_title(text: str, limit: int = MAX_TITLE) -> str:
    """A title from a question: its first line whole when it fits in ``limit`` chars.

    A longer line gives its first sentence when that fits and says enough, else
    as many whole words as fit, ending with "…".
    """
    text = _CONTROL.sub(" ", text)
    line = next((" ".join(row.split()) for row in text.splitlines() if row.strip()), "")
    if not line:
        return "Untitled"
    if len(line) <= limit:
        return line
    sentence = _SENTENCE_END.split(line, maxsplit=1)[0]
    if MIN_SENTENCE <= len(sentence) <= limit:
        return sentence
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return (cut.rstrip(_TRAILING) or line[: limit - 1]) + "…"


def clean_title(text: str, limit: int = 200) -> str:
    """A title typed by a user: one line, trimmed; stored verbatim otherwise."""
    title = " ".join(text.split())
    return title[:limit]
