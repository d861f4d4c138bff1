"""Search on PostgreSQL: a ``tsquery`` over the GIN-indexed ``messages.search`` vector.

The vector holds a message's words (runs of letters and digits, lower-cased,
accents removed; see migration m001), so a query is built from the words of the
terms only: nothing a user types reaches ``to_tsquery`` as syntax. Every word
must match, the last one as a prefix; a term with symbols (``C++``) must also
appear in the message as typed (``strpos``, ASCII and other case ignored).

Snippets reuse the rules of :mod:`mschat.store.terms`: one query finds where
each hit first matches (``regexp_instr`` with the same word bounds) and returns
a bounded window around that place, so a 20 MB message never leaves the server.

Newest first, a search looks at the newest :data:`RECENT` messages first (the
primary key read backwards: a common word fills a page there at once), then, if
it needs more, at the older ones through the GIN index only. The planner alone
may pick the backward scan for a word it guesses common and then read every
message when none has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mschat.store.terms import REACH, bounds, cut, has_word, is_literal, is_prefix, words

#: how many of the newest messages a search looks at before it asks the GIN index
RECENT = 20_000
#: characters of a hit looked at first for its first match
_PROBE = 1 << 16

_ORDER = {
    "newest": "m.id DESC",
    "relevance": "ts_rank(m.search, q.query, 1) DESC, m.id DESC",
}


def tsquery(terms: Sequence[str]) -> str:
    """``to_tsquery`` text: every word of every term AND-ed, the last a prefix if it ends one."""
    found = [word for term in terms for word in words(term)]
    text = " & ".join(found)
    return f"{text}:*" if is_prefix(terms) else text


def _escaped(term: str) -> str:
    """``term`` as a literal of PostgreSQL's regular expressions (a backslash before
    every ASCII symbol; before a letter or digit it would start an escape)."""
    return "".join(f"\\{c}" if c.isascii() and not c.isalnum() else c for c in term)


def first_match_pattern(terms: Sequence[str]) -> str:
    """Where a hit first matches: a term, starting (and ending) a word as the index matched it."""
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        starts, ends = bounds(term, terms)
        part = _escaped(term)
        if starts:
            part = f"(?<![[:alnum:]]){part}"
        if ends:
            part = f"{part}(?![[:alnum:]])"
        parts.append(part)
    return "|".join(parts)


@dataclass(frozen=True)
class SearchQuery:
    """The SQL of one search: its hits, then the snippet windows of the hits."""

    terms: list[str]

    @classmethod
    def of(cls, terms: list[str]) -> SearchQuery | None:
        """The query of these terms, or None when none has a letter or digit."""
        if not any(has_word(term) for term in terms):
            return None
        return cls(terms)

    def hits_sql(
        self,
        clauses: list[str],
        params: list[Any],
        *,
        order: str,
        limit: int,
        above: int | None = None,
        below: int | None = None,
    ) -> tuple[str, list[Any]]:
        """The hits visible under ``clauses`` (with an id above ``above`` or below
        ``below``): id, session id, title, role, created."""
        where = ["m.search @@ q.query", *clauses]
        values: list[Any] = [tsquery(self.terms), *params]
        for term in filter(is_literal, self.terms):
            where.append("strpos(lower(m.content), lower(%s)) > 0")
            values.append(term)
        if above is not None:
            where.append("m.id > %s")
            values.append(above)
        if below is not None:
            where.append("m.id < %s")
            values.append(below)
        sql = (
            "SELECT m.id, m.session_id, s.title, m.role, m.created "
            "FROM messages m JOIN sessions s ON s.id = m.session_id, "
            "(SELECT to_tsquery('mschat_words', %s) AS query) q "
            f"WHERE {' AND '.join(where)} ORDER BY {_ORDER[order]} LIMIT %s"
        )
        return sql, [*values, limit]

    def windows_sql(self, ids: list[int]) -> tuple[str, list[Any]]:
        """Per hit: id, a window of ``2 * REACH`` characters around the first match
        and one more (the message goes on after it if that one is there), where the
        match is in it, whether the message goes on before it.

        Only the part of a message up to its window is unpacked when the match is
        near its start (``left`` and ``substr`` read slices; ``length`` would not).
        """
        sql = (
            "SELECT id, substr(content, start, %s), at - start, start > 1 FROM ("
            "  SELECT id, content, at, greatest(at - %s, 1) AS start"
            "  FROM (SELECT id, content, greatest(coalesce("
            "          nullif(regexp_instr(left(content, %s), %s, 1, 1, 0, 'i'), 0),"
            "          regexp_instr(content, %s, 1, 1, 0, 'i')), 1) AS at"
            "        FROM messages WHERE id = ANY(%s)) found"
            ") windows"
        )
        pattern = first_match_pattern(self.terms)
        return sql, [2 * REACH + 1, REACH, _PROBE, pattern, pattern, ids]

    def snippet(self, window: str, focus: int, before: bool) -> tuple[str, list[tuple[int, int]]]:
        """The snippet and its highlight spans, cut from a hit's window (and one more)."""
        after = len(window) > 2 * REACH
        return cut(window[: 2 * REACH], max(focus, 0), before, after, self.terms)
