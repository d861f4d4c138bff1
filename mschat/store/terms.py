"""Search terms as the user typed them, and the snippet cut around a match.

The rules every backend applies. Nothing a user types is query syntax: quotes,
``AND``, ``NEAR``, ``*``, ``^``, ``:``, ``-`` and parentheses are searched for
like any other character. A term with symbols (``C++``) must appear as typed; a
plain word matches a word of the message, the last one as a prefix (search as
you type). Each backend finds where a message first matches without reading all
of it, and hands a bounded window around that place to :func:`cut`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: characters around a term that belong to the prose, not to the term:
#: ``"foo"``, ``(C++)`` and ``WAL?`` search for foo, C++ and WAL
PROSE_EDGES = "\"'“”‘’«»()[]{}<>.,;:!?"

#: a snippet shows about this many words...
_WORDS = 12
#: ...and never more characters than this (a base64 line is one "word")
_MAX_CHARS = 160
#: characters (or bytes) read either side of the first match for the snippet
REACH = 1200

_WORD = re.compile(r"[^\W_]+")


def search_terms(text: str) -> list[str]:
    """The terms of a search: its words, without the prose punctuation around them."""
    return [term for word in text.split() if (term := word.strip(PROSE_EDGES))]


def has_word(term: str) -> bool:
    """Whether a full-text index can look ``term`` up (it has a letter or digit)."""
    return any(char.isalnum() for char in term)


def is_literal(term: str) -> bool:
    """Whether ``term`` has symbols a full-text index drops (``C++``, ``foo.bar``, ``-v``).

    The index finds its words; the message must also contain the term as typed.
    """
    return not term.isalnum()


def words(term: str) -> list[str]:
    """The words a full-text index sees in ``term``: runs of letters and digits."""
    return _WORD.findall(term)


def is_prefix(terms: Sequence[str]) -> bool:
    """Whether the last term is searched as a prefix (it ends with a letter or digit)."""
    return terms[-1][-1].isalnum()


def bounds(term: str, terms: Sequence[str]) -> tuple[bool, bool]:
    """Whether a match of ``term`` must start a word, and end one, as the index matched it."""
    if is_literal(term):
        return False, False
    return True, term != terms[-1]  # the last term is a prefix


def term_pattern(terms: Sequence[str]) -> re.Pattern[str]:
    """Where the terms occur in a text (case-insensitive), as the index matched them."""
    parts = []
    for term in sorted(terms, key=len, reverse=True):  # the longest first: C++ before C
        if is_literal(term):
            parts.append(re.escape(term))
        else:
            ending = r"[^\W_]*" if term == terms[-1] else r"(?![^\W_])"
            parts.append(rf"(?<![^\W_]){re.escape(term)}{ending}")
    return re.compile("|".join(parts), re.IGNORECASE)


def cut(
    text: str, focus: int, before: bool, after: bool, terms: Sequence[str]
) -> tuple[str, list[tuple[int, int]]]:
    """About a dozen words of ``text`` around ``focus``, on one line, and the spans
    of the terms in it; "…" where ``text`` (a window of the message: ``before`` and
    ``after`` say whether the message goes on) or the cut goes on.
    """
    pattern = term_pattern(terms)
    match = pattern.search(text, focus) or pattern.search(text)
    if match:
        focus = match.start()
    # the words that count hold a letter or digit, as the index's tokens do ("=" does not)
    spans = [word.span() for word in re.finditer(r"\S*[^\W_]\S*", text)]
    if not spans:
        return "", []
    hit = next((i for i, (_, end) in enumerate(spans) if end > focus), len(spans) - 1)
    # a third of the words before the match; from the start if it is that near
    first = 0 if hit < _WORDS * 2 // 3 else max(0, min(hit - _WORDS // 3, len(spans) - _WORDS))
    last = min(len(spans), first + _WORDS)
    begin, end = spans[first][0], spans[last - 1][1]
    if end - begin > _MAX_CHARS:
        begin = max(begin, min(focus - _MAX_CHARS // 3, end - _MAX_CHARS))
        end = begin + _MAX_CHARS
    head = "…" if before or begin > 0 else ""
    tail = "…" if after or end < len(text) else ""
    # terms hold no whitespace, so collapsing it keeps every match whole
    shown = f"{head}{' '.join(text[begin:end].split())}{tail}"
    return shown, [found.span() for found in pattern.finditer(shown)]
