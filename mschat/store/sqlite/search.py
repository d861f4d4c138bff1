"""Search on SQLite: the FTS5 query of a search, and its snippet read from a blob.

A message is read in pieces to find where a term first occurs, so the snippet of
a 20 MB message costs about as much as a short one's (FTS5's ``snippet()`` is
quadratic in a message's matches).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from mschat.store.terms import REACH, bounds, cut, has_word, is_prefix

#: bytes of the message read at a time while looking for the first match
_CHUNK = 1 << 16
#: which bytes continue a word (any byte of a multi-byte UTF-8 character does)
_WORD_BYTE = bytes(int(b >= 0x80 or chr(b).isalnum()) for b in range(256))


def fts_query(terms: Sequence[str]) -> str:
    """Every term as an FTS5 phrase (all must match); the last as a prefix if it ends a word.

    The tokenizer turns ``write-ahead`` into a two-word phrase and ``C++`` into
    "c"; quoting makes operators plain words.
    """
    phrases = ['"' + term.replace('"', '""') + '"' for term in terms if has_word(term)]
    if is_prefix(terms):
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
    begin = max(at - REACH, 0)
    blob.seek(begin)
    raw = blob.read(2 * REACH)
    # the cut may split a character at either end: those bytes are dropped
    text = raw.decode("utf-8", "ignore")
    focus = len(raw[: max(at - begin, 0)].decode("utf-8", "ignore"))
    return cut(text, focus, begin > 0, begin + len(raw) < size, terms)


def _first_match(blob: sqlite3.Blob, terms: Sequence[str]) -> int:
    """The byte offset of the first match of any term (ASCII case ignored), or 0."""
    needles = [(term.encode().lower(), bounds(term, terms)) for term in terms]
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
