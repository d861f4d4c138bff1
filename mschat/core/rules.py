"""The rules that need no I/O: defaults per user kind, settings and their validation."""

from __future__ import annotations

from typing import Any

from mschat.core.errors import InvalidInput
from mschat.core.models import Status, UserKind

MAX_TEMPERATURE = 2.0
MAX_TOKENS_LIMIT = 1_000_000

#: the status of a new user of each kind
DEFAULT_STATUS = {
    UserKind.LOCAL: Status.ACTIVE,
    UserKind.DISCORD: Status.DISABLED,
    UserKind.API: Status.ACTIVE,
}

USER_SETTINGS = (
    "name",
    "system_msg",
    "max_tokens",
    "temperature",
    "show_public",
    "attach",
    "model",
    "status",
    "rate_limit",
    "priority",
    "ignored",
    "admin",
)
ADMIN_ONLY_SETTINGS = ("rate_limit", "priority", "ignored", "admin")


def validate_temperature(value: Any) -> float:
    """A temperature from 0 to 2, or InvalidInput."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"temperature must be a number from 0 to 2, got {value!r}") from None
    if not 0 <= number <= MAX_TEMPERATURE:
        raise InvalidInput(f"temperature must be from 0 to 2, got {number:g}")
    return number


def validate_max_tokens(value: Any, limit: int = MAX_TOKENS_LIMIT) -> int:
    """A max_tokens from 1 to ``limit``, or InvalidInput."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"max_tokens must be a whole number, got {value!r}") from None
    if not 1 <= number <= limit:
        raise InvalidInput(f"max_tokens must be from 1 to {limit}, got {number}")
    return number


def validate_status(value: Any) -> str:
    """One of new / active / disabled, or InvalidInput."""
    try:
        return Status(str(value).lower()).value
    except ValueError:
        raise InvalidInput(f"status must be one of new, active, disabled, got {value!r}") from None


#: the largest number a user's priority or rate limit may be (both backends store it)
INT_LIMIT = 2**31 - 1


def validate_whole(key: str, value: Any, minimum: int) -> int:
    """A whole number from ``minimum`` to :data:`INT_LIMIT` (priority, rate_limit), or
    InvalidInput."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key} must be a whole number, got {value!r}") from None
    if not minimum <= number <= INT_LIMIT:
        raise InvalidInput(f"{key} must be from {minimum} to {INT_LIMIT}, got {number}")
    return number
