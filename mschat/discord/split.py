"""Split long text into Discord-sized messages without breaking code blocks.

Pure functions, no discord.py: the splitter prefers paragraph breaks, then line
breaks outside code, then any line break; a part that ends inside a fenced code
block is closed with its fence and the next part reopens it with its language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DISCORD_LIMIT = 2000
#: a fence line: up to 3 spaces, ``` or ~~~ (3 or more), then an info string
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True, slots=True)
class Fence:
    """An open fenced code block: its marker and language."""

    marker: str
    lang: str

    @property
    def opening(self) -> str:
        """The line that reopens the block in the next part."""
        return f"{self.marker}{self.lang}"


def _next_fence(line: str, fence: Fence | None) -> Fence | None:
    """The open fence after ``line`` given the one before it."""
    match = FENCE.match(line)
    if match is None:
        return fence
    marker, info = match.group(1), match.group(2).strip()
    if fence is None:
        if marker[0] == "`" and "`" in info:
            return None  # not a fence: backticks in a backtick info string
        return Fence(marker, info.split()[0] if info else "")
    if marker[0] == fence.marker[0] and len(marker) >= len(fence.marker) and not info:
        return None
    return fence


def open_fence(text: str) -> Fence | None:
    """The code block still open at the end of ``text``, if any."""
    fence: Fence | None = None
    for line in text.split("\n"):
        fence = _next_fence(line, fence)
    return fence


def close_open_fence(text: str) -> str:
    """``text`` with a closing fence appended when it ends inside a code block."""
    fence = open_fence(text)
    if fence is None:
        return text
    return text + ("" if text.endswith("\n") else "\n") + fence.marker


def _hard_wrap(line: str, width: int) -> list[str]:
    """Cut an over-long line at spaces (or anywhere, when it has none)."""
    pieces = []
    while len(line) > width:
        cut = line.rfind(" ", width // 2, width)
        cut = width if cut <= 0 else cut
        pieces.append(line[:cut])
        line = line[cut:].lstrip(" ") if cut < width else line[cut:]
    pieces.append(line)
    return pieces


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` characters (empty text: no parts)."""
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    raw = text.split("\n")
    # how much a part may need for a reopened and a closing fence
    fences = {f for f in (_next_fence(line, None) for line in raw) if f}
    overhead = max((len(f.opening) + len(f.marker) + 2 for f in fences), default=0)
    if overhead > limit // 4:
        raise ValueError("limit too small for this text's code fences")
    width = limit - overhead - 1

    lines: list[str] = []
    for line in raw:
        lines.extend(_hard_wrap(line, width) if len(line) > width else [line])
    before: list[Fence | None] = []  # open fence before each line
    fence: Fence | None = None
    for line in lines:
        before.append(fence)
        fence = _next_fence(line, fence)
    before.append(fence)

    plan = _Plan(lines, before)
    parts: list[str] = []
    start = 0
    while start < len(lines):
        end, skip = plan.best_cut(start, limit)
        parts.append(plan.render(start, end))
        start = end + skip
    return [p for p in parts if p.strip()]


class _Plan:
    """Lines with the fence open before each, and O(1) part lengths."""

    def __init__(self, lines: list[str], before: list[Fence | None]) -> None:
        self.lines = lines
        self.before = before
        self.prefix = [0]
        for line in lines:
            self.prefix.append(self.prefix[-1] + len(line))

    def _head(self, start: int, end: int) -> tuple[Fence | None, int]:
        """The fence to reopen and the first body line (a leading closing fence is dropped)."""
        head = self.before[start]
        if head is not None and end > start and self.before[start + 1] is None:
            return None, start + 1  # the part starts on the block's own closing fence
        return head, start

    def render(self, start: int, end: int) -> str:
        """Lines [start, end) as one part, with the fence reopened and closed as needed."""
        head, first = self._head(start, end)
        body = self.lines[first:end]
        text = "\n".join(([head.opening] if head else []) + body)
        tail = self.before[end]
        if tail is not None:
            text += "\n" + tail.marker
        return text

    def length(self, start: int, end: int) -> int:
        """len(render(start, end)) without building it."""
        head, first = self._head(start, end)
        count = end - first + (1 if head else 0)
        size = self.prefix[end] - self.prefix[first] + max(count - 1, 0)
        if head:
            size += len(head.opening)
        tail = self.before[end]
        if tail is not None:
            size += 1 + len(tail.marker)
        return size

    def best_cut(self, start: int, limit: int) -> tuple[int, int]:
        """Where the part starting at ``start`` ends, and how many lines to skip after it."""
        lines, before = self.lines, self.before
        end = start + 1  # lines are already short enough for one per part
        while end < len(lines) and self.length(start, end + 1) <= limit:
            end += 1
        if end >= len(lines):
            return len(lines), 0
        minimum = limit // 2
        candidates = [
            k for k in range(end, start, -1) if self.length(start, k) >= minimum or k == start + 1
        ]
        # 1. a blank line outside code (a paragraph break): drop the blank line
        for k in candidates:
            if before[k] is None and not lines[k].strip():
                return k, 1
        # 2. any line break outside code
        for k in candidates:
            if before[k] is None:
                return k, 0
        # 3. inside a code block: the fence is closed and reopened
        return end, 0
