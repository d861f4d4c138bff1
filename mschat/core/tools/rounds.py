"""What the tool loop tells the reply writer between provider requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mschat.providers.base import UsageChunk


@dataclass(frozen=True, slots=True)
class RoundEnded:
    """A provider request ended in tool calls; the next one follows.

    ``tool_calls`` are the round's ``tool_calls`` rows: the writer stores them, and
    the request's ``api_calls`` row, with the reply's final writes.
    """

    usage: UsageChunk | None
    tool_calls: tuple[dict[str, Any], ...] = ()
