"""Session titles from the keywords of the first question."""

from __future__ import annotations

import re

MAX_TITLE = 40

STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did
    didn't do does doesn't doing don't down during each few for from further had hadn't
    has hasn't have haven't having he he'd he'll he's her here here's hers herself him
    himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself
    let's me more most mustn't my myself no nor not of off on once only or other ought
    our ours ourselves out over own same shan't she she'd she'll she's should shouldn't
    so some such than that that's the their theirs them themselves then there there's
    these they they'd they'll they're they've this those through to too under until up
    very was wasn't we we'd we'll we're we've were weren't what what's when when's where
    where's which while who who's whom why why's with won't would wouldn't you you'd
    you'll you're you've your yours yourself yourselves please tell explain give show
    help want need like just really also hi hello hey thanks thank could would can will
    """.split()
)

_WORD = re.compile(r"[\w][\w'’+#.-]*", re.UNICODE)


def make_title(text: str, limit: int = MAX_TITLE) -> str:
    """Keywords of ``text`` (stop words and repeats dropped), at most ``limit`` chars."""
    words = []
    seen = set()
    for match in _WORD.finditer(text):
        word = match.group(0).strip(".'’-")
        lowered = word.lower()
        if not word or lowered in STOP_WORDS or lowered in seen:
            continue
        seen.add(lowered)
        words.append(word)
    title = ""
    for word in words:
        candidate = f"{title} {word}".strip()
        if len(candidate) > limit:
            break
        title = candidate
    if not title:
        flat = " ".join(text.split())
        title = flat[:limit].strip()
        if not words and not title:
            return "Untitled"
        if words and not title:
            title = words[0][:limit]
    return title or "Untitled"


def clean_title(text: str, limit: int = 200) -> str:
    """A title typed by a user: one line, trimmed; stored verbatim otherwise."""
    title = " ".join(text.split())
    return title[:limit]
