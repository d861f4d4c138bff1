"""Typed events the core streams while answering; every front end renders them."""

from __future__ import annotations

from dataclasses import dataclass

from mschat.core.errors import MschatError
from mschat.core.models import Message, Session, Usage


@dataclass(frozen=True, slots=True)
class WaitingForTurn:
    """This ask waits its turn: another one is being answered in the session.

    That other ask runs in this process or, for a public session, in another
    one. Comes before ``Started``, at most once per ask; nothing is stored yet.
    """

    session_id: int


@dataclass(frozen=True, slots=True)
class Queued(WaitingForTurn):
    """This ask waits in the queue for one of its provider's slots (``queue.*``).

    A ``WaitingForTurn``, so a front end that shows only that shows it too;
    ``session_id`` is 0 when the ask will create its session. Comes again each
    time the question's place in the line changes. Every front end shows
    :attr:`text`.
    """

    provider: str
    #: the question's place in its provider's line, 1 = next (0: not known yet)
    position: int = 0

    @property
    def ahead(self) -> int:
        """How many questions wait ahead of this one."""
        return max(self.position - 1, 0)

    @property
    def text(self) -> str:
        """The place in line in words, as every front end shows it."""
        if self.position <= 0:
            return "Waiting in line for a free slot"
        if self.position == 1:
            return "Waiting in line: yours is next"
        return f"Waiting in line: {self.ahead} ahead of you"


@dataclass(frozen=True, slots=True)
class Started:
    """The user's message is stored and the reply row exists."""

    session: Session
    user_message: Message
    reply_id: int
    model: str
    context_window: int
    created_session: bool = False
    #: the user's current session could not be used ("removed", or made "private"
    #: by its creator; "public" for a private question), so this message started a
    #: new one instead
    left_session_id: int | None = None
    left_reason: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryTrimmed:
    """Older turns were left out so the prompt fits the context window."""

    dropped: int
    kept: int
    prompt_tokens: int
    budget: int


@dataclass(frozen=True, slots=True)
class Retrying:
    """A provider request failed and is being retried."""

    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model asked for a tool call; the policy decides next (maybe asking the user).

    ``arguments`` is the model's JSON text, unchecked: hostile (show it through
    ``visible()``, never as markup).
    """

    call_id: str
    server: str
    tool: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call ended; ``result`` is what the model was told (hostile text).

    ``status``: ``ok``, ``error`` (the tool or its server failed), ``denied`` (the
    policy or the user refused it: it never reached the server) or ``timeout``.
    ``notice`` is one line for the asker about a denied call (e.g. which option
    allows it), or None.
    """

    call_id: str
    server: str
    tool: str
    status: str
    result: str
    duration_ms: int
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class UsageReported:
    """Token usage of the reply, as reported by the provider."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Completed:
    """The reply finished and is stored as complete."""

    message: Message
    usage: Usage
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The reply failed (or was interrupted); what arrived is kept in ``message``."""

    error: MschatError
    message: Message | None


Event = (
    WaitingForTurn
    | Started
    | HistoryTrimmed
    | Retrying
    | TextDelta
    | ToolCallStarted
    | ToolCallFinished
    | UsageReported
    | Completed
    | Failed
)
