"""Plain dataclasses for users, sessions and messages (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


def utcnow() -> str:
    """The current time as ISO-8601 UTC text, as stored in the database."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class UserKind(StrEnum):
    """Where a user comes from."""

    LOCAL = "local"
    DISCORD = "discord"
    API = "api"


class Status(StrEnum):
    """What a plain message from the user does: nothing, a new session, or the current one."""

    NEW = "new"
    ACTIVE = "active"
    DISABLED = "disabled"


class Origin(StrEnum):
    """Where a session was created; decides whether it starts public."""

    TERMINAL = "terminal"
    API = "api"
    DISCORD_DM = "discord_dm"
    DISCORD_GUILD = "discord_guild"

    @property
    def starts_public(self) -> bool:
        """Sessions created in a public channel start public; others private."""
        return self is Origin.DISCORD_GUILD


class MessageStatus(StrEnum):
    """Lifecycle of a stored message."""

    COMPLETE = "complete"
    STREAMING = "streaming"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    #: refused by moderation: a question never sent to a model, or an answer withheld
    FLAGGED = "flagged"


DEFAULT_MAX_TOKENS = 600
DEFAULT_TEMPERATURE = 0.8


@dataclass(slots=True)
class User:
    """Anyone who talks to mschat."""

    id: int
    kind: str
    external_id: str
    name: str
    created: str
    updated: str
    modified: str
    status: str
    model: str | None = None
    current_session_id: int | None = None
    system_msg: str | None = None
    show_public: bool = False
    attach: bool = False
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    rate_limit: int | None = None
    priority: int = 0
    ignored: bool = False
    admin: bool = False

    @property
    def label(self) -> str:
        """A human label: the name plus where the user comes from."""
        if self.kind == UserKind.LOCAL:
            return self.name
        return f"{self.name} ({self.kind}:{self.external_id})"


@dataclass(slots=True)
class Session:
    """A conversation and its settings (messages are loaded separately)."""

    id: int
    creator_id: int
    title: str
    model: str | None
    system_msg: str | None
    public: bool
    origin: str
    created: str
    updated: str
    modified: str
    forked_from_id: int | None = None
    hidden: bool = False
    message_count: int = 0
    creator_name: str | None = None


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """A file that came with a question: its content is stored once per ``sha256``."""

    sha256: str
    name: str
    mime: str
    size: int

    @property
    def is_image(self) -> bool:
        """Whether it is an image (sent to models that see), else a text file (inlined)."""
        return self.mime.startswith("image/")


@dataclass(slots=True)
class Message:
    """One stored turn."""

    id: int
    session_id: int
    author_id: int | None
    role: str
    content: str
    created: str
    status: str = MessageStatus.COMPLETE
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    external_ref: str | None = None
    #: the files that came with a question, in the order given
    attachments: tuple[AttachmentInfo, ...] = ()
    author_name: str | None = None


@dataclass(slots=True)
class SearchHit:
    """A message found by full-text search."""

    message_id: int
    session_id: int
    session_title: str
    role: str
    created: str
    #: about a dozen words around the first match, on one line
    snippet: str
    #: (start, end) of each matched term in ``snippet``
    highlights: list[tuple[int, int]] = field(default_factory=list)

    def parts(self) -> list[tuple[str, bool]]:
        """The snippet as pieces of text, each saying whether it is a matched term."""
        pieces: list[tuple[str, bool]] = []
        done = 0
        for start, end in self.highlights:
            if start > done:
                pieces.append((self.snippet[done:start], False))
            pieces.append((self.snippet[start:end], True))
            done = end
        if done < len(self.snippet):
            pieces.append((self.snippet[done:], False))
        return pieces


@dataclass(slots=True)
class Usage:
    """Token usage of one reply."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        """Prompt plus completion tokens, when both are known."""
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens
