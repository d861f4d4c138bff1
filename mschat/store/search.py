"""Search terms as the user typed them, and the snippet shown around a hit.

Nothing a user types is query syntax: quotes, ``AND``, ``NEAR``, ``*``, ``^``,
``:``, ``-`` and parentheses are searched for like any other character. A
message is read in pieces to find where a term first occurs, so the snippet of
a 20 MB message costs about as much as a short one's (FTS5's ``snippet()`` is
quadratic in a message's matches).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

#: characters around a term that belong to the prose, not to the term:
#: ``"foo"``, ``(C++)`` and ``WAL?`` search for foo, C++ and WAL
PROSE_EDGES = "\"'“”‘’«»()[]{}<>.,;:!?"

#: a snippet shows about this many words...
_WORDS = 12
#: ...and never more characters than this (a base64 line is one "word")
_MAX_CHARS = 160
#: bytes of the message read at a time while looking for the first match
_CHUNK = 1 << 16
#: bytes read either side of the first match for the snippet
_REACH = 1200
#: which bytes continue a word (any byte of a multi-byte UTF-8 character does)
_WORD_BYTE = bytes(int(b >= 0x80 or chr(b).isalnum()) for b in range(256))


def search_terms(text: str) -> list[str]:
    """The terms of a search: its words, without the prose punctuation around them."""
    return [term for word in text.split() if (term := word.strip(PROSE_EDGES))]


def has_word(term: str) -> bool:
    """Whether the FTS index can look ``term`` up (it has a letter or digit)."""
    return any(char.isalnum() for char in term)


def is_literal(term: str) -> bool:
    """Whether ``term`` has symbols the FTS index drops (``C++``, ``foo.bar``, ``-v``).

    The index finds its words; the message must also contain the term as typed.
    """
    return not term.isalnum()


def fts_query(terms: Sequence[str]) -> str:
    """Every term as an FTS5 phrase (all must match); the last as a prefix if it ends a word.

    The tokenizer turns ``write-ahead`` into a two-word phrase and ``C++`` into
    "c"; quoting makes operators plain words.
    """
    phrases = ['"' + term.replace('"', '""') + '"' for term in terms if has_word(term)]
    if terms[-1][-1].isalnum():
        phrases[-1] += "*"  # search as you type
    return " ".join(phrases)


def snippet(blob: sqlite3.Blob, terms: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """About a dozen words around the first match in a message, on one line, and the
    (start, end) offsets of the terms in it.

    ``blob`` is the message's content opened with ``Connection.blobopen``; "…"
    marks where the message goes on.
    """
    size = len(blob)
    at = _first_match(blob, terms)
    begin = max(at - _REACH, 0)
    blob.seek(begin)
    raw = blob.read(2 * _REACH)
    # the cut may split a character at either end: those bytes are dropped
    text = raw.decode("utf-8", "ignore")
    focus = len(raw[: max(at - begin, 0)].decode("utf-8", "ignore"))
    return _cut(text, focus, begin > 0, begin + len(raw) < size, _term_pattern(terms))


def _first_match(blob: sqlite3.Blob, terms: Sequence[str]) -> int:
    """The byte offset of the first match of any term (ASCII case ignored), or 0."""
    needles = [(term.encode().lower(), _bounds(term, term == terms[-1])) for term in terms]
    overlap = max(len(needle) for needle, _ in needles) + 1
    size = len(blob)
    for offset in range(0, size, _CHUNK):
        start = max(offset - 1, 0)  # one byte before: is a match the start of a word?
        blob.seek(start)
        data = blob.read(offset - start + _CHUNK + overlap).lower()
        found = [
            at
            for needle, (starts, ends) in needles
            if (at := _find(data, needle, offset - start, starts, ends)) >= 0
            and at < offset - start + _CHUNK  # one in the overlap is the next chunk's
        ]
        if found:
            return start + min(found)
    return 0


def _bounds(term: str, last: bool) -> tuple[bool, bool]:
    """Whether a match of ``term`` must start a word, and end one, as FTS5 matched it."""
    if is_literal(term):
        return False, False
    return True, not last  # the last term is a prefix


def _find(data: bytes, needle: bytes, start: int, starts: bool, ends: bool) -> int:
    at = data.find(needle, start)
    while at >= 0:
        end = at + len(needle)
        if not (starts and at and _WORD_BYTE[data[at - 1]]) and not (
            ends and end < len(data) and _WORD_BYTE[data[end]]
        ):
            return at
        at = data.find(needle, at + 1)
    return -1


def _term_pattern(terms: Sequence[str]) -> re.Pattern[str]:
    """Where the terms occur in a text (case-insensitive), as FTS5 matched them."""
    parts = []
    for term in sorted(terms, key=len, reverse=True):  # the longest first: C++ before C
        if is_literal(term):
            parts.append(re.escape(term))
        else:
            ending = r"[^\W_]*" if term == terms[-1] else r"(?![^\W_])"
            parts.append(rf"(?<![^\W_]){re.escape(term)}{ending}")
    return re.compile("|".join(parts), re.IGNORECASE)


def _cut(
    text: str, focus: int, before: bool, after: bool, pattern: re.Pattern[str]
) -> tuple[str, list[tuple[int, int]]]:
    """The words of ``text`` around ``focus``, with "…" where ``text`` or the cut goes on."""
    match = pattern.search(text, focus) or pattern.search(text)
    if match:
        focus = match.start()
    # the words that count hold a letter or digit, as FTS5's tokens do ("=" does not)
    words = [word.span() for word in re.finditer(r"\S*[^\W_]\S*", text)]
    if not words:
        return "", []
    hit = next((i for i, (_, end) in enumerate(words) if end > focus), len(words) - 1)
    # a third of the words before the match; from the start if it is that near
    first = 0 if hit < _WORDS * 2 // 3 else max(0, min(hit - _WORDS // 3, len(words) - _WORDS))
    last = min(len(words), first + _WORDS)
    begin, end = words[first][0], words[last - 1][1]
    if end - begin > _MAX_CHARS:
        begin = max(begin, min(focus - _MAX_CHARS // 3, end - _MAX_CHARS))
        end = begin + _MAX_CHARS
    head = "…" if before or begin > 0 else ""
    tail = "…" if after or end < len(text) else ""
    # terms hold no whitespace, so collapsing it keeps every match whole
    shown = f"{head}{' '.join(text[begin:end].split())}{tail}"
    return shown, [found.span() for found in pattern.finditer(shown)]
