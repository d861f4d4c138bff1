"""What the tool loop tells the reply writer between provider requests."""

from __future__ import annotations

from dataclasses import dataclass

from mschat.providers.base import UsageChunk


@dataclass(frozen=True, slots=True)
class RoundEnded:
    """A provider request ended in tool calls (its usage); the next one follows."""

    usage: UsageChunk | None
