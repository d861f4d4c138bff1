"""The one error hierarchy every front end translates once."""

from __future__ import annotations


class MschatError(Exception):
    """Base of every error mschat reports to a user."""

    #: HTTP status the API uses for this error
    http_status = 400
    #: short machine-readable code (API JSON, logs)
    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(MschatError):
    """The configuration file or an environment variable is invalid."""

    code = "config_error"
    http_status = 500


class InvalidInput(MschatError):
    """A value given by the user is not acceptable (empty prompt, bad setting)."""

    code = "invalid_input"


class NotFound(MschatError):
    """A user, session, message or model does not exist (or is invisible)."""

    code = "not_found"
    http_status = 404


class PermissionDenied(MschatError):
    """The user may not see or change this object."""

    code = "permission_denied"
    http_status = 403


class UserIgnored(PermissionDenied):
    """The user is on the ignore list: nothing they send is stored or answered."""

    code = "user_ignored"


class ChatDisabled(PermissionDenied):
    """The user's status is disabled, so plain messages are not answered."""

    code = "user_disabled"


class Busy(MschatError):
    """The object is busy (e.g. a reply is still streaming) or rate limited."""

    code = "busy"
    http_status = 429


class RateLimited(Busy):
    """The user asked as many questions as their rate limit allows for now."""

    code = "rate_limited"


class QueueFull(Busy):
    """As many questions as ``queue.size`` allows already wait for a slot."""

    code = "queue_full"


class QueueTimeout(Busy):
    """The question waited in the queue longer than ``queue.max_age``."""

    code = "queue_timeout"


class Paused(Busy):
    """Answering is paused (``mschat ops pause``) and new questions are refused."""

    code = "paused"
    http_status = 503


class DatabaseError(MschatError):
    """The database cannot be used (newer schema, corrupt, unwritable)."""

    code = "database_error"
    http_status = 500


class DatabaseUnavailable(DatabaseError):
    """The database server cannot be reached now (it is down or restarting).

    mschat reconnects by itself once the server is back; ``retry_after`` is the
    seconds a client should wait before asking again.
    """

    code = "database_unavailable"
    http_status = 503
    retry_after = 5


class ProviderError(MschatError):
    """A model provider failed; ``kind`` says how, for retries and front ends."""

    code = "provider_error"
    http_status = 502

    #: kinds: auth, model_not_found, unreachable, timeout, rate_limited, server,
    #: bad_request, bad_response, context_length, local, not_configured
    def __init__(
        self,
        message: str,
        *,
        kind: str = "server",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class ContentFlagged(MschatError):
    """The moderation model flagged a text; ``categories`` say what it found."""

    code = "content_flagged"
    http_status = 400

    def __init__(self, message: str, *, categories: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.categories = categories


class QuestionFlagged(ContentFlagged):
    """A question was flagged: it is stored (marked flagged) but never sent to a model."""

    code = "question_flagged"


class AnswerWithheld(ContentFlagged):
    """An answer was flagged: the user gets this line instead of its text."""

    code = "answer_withheld"
