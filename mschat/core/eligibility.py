"""Who may see, use or edit a session, and who may chat: each rule once.

Every front end asks these questions through the core; none keeps a copy.

The rules about a user's questions (the rate limit, one question at a time)
span every instance on the database, so they are decided by the database:
:func:`admission` checks them in the very transaction that stores the
question, under the user's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mschat.core.errors import Busy, ChatDisabled, RateLimited, UserIgnored
from mschat.core.models import Session, Status, User

if TYPE_CHECKING:
    from mschat.store.contract import Store, UserAsks

#: the window of a user's rate limit (questions per 6 hours)
RATE_WINDOW = timedelta(hours=6)


def can_see(user: User, session: Session) -> bool:
    """Own and public sessions are visible; an admin sees (reads) everything."""
    return session.creator_id == user.id or session.public or user.admin


def can_use(user: User, session: Session) -> bool:
    """Asking in or attaching to a session: own or public only (for admins too)."""
    return session.creator_id == user.id or session.public


def can_edit(user: User, session: Session) -> bool:
    """Renaming, changing or removing a session: its creator, or an admin."""
    return session.creator_id == user.id or user.admin


def check_not_ignored(user: User) -> None:
    """An ignored user is refused everything that would store or answer."""
    if user.ignored:
        raise UserIgnored("you are not allowed to chat here")


def check_may_route(user: User) -> None:
    """A plain message (Q&A mode, ``/chat``) needs a status other than disabled."""
    if user.status == Status.DISABLED:
        raise ChatDisabled("your status is disabled; set it to new or active to chat")


def check_rate(user: User, used: int, oldest: str | None) -> None:
    """Refuse a question beyond the user's rate limit (``used`` within the window)."""
    if user.rate_limit is None or used < user.rate_limit:
        return
    retry = datetime.fromisoformat(oldest) + RATE_WINDOW if oldest else None
    when = f"; try again after {retry:%Y-%m-%d %H:%M} UTC" if retry else ""
    questions = "1 question" if user.rate_limit == 1 else f"{user.rate_limit} questions"
    raise RateLimited(
        f"rate limit reached: {questions} per "
        f"{int(RATE_WINDOW.total_seconds() // 3600)} hours{when}"
    )


def check_asks(user: User, asks: UserAsks) -> None:
    """Refuse a question while another of the user's is answered, or beyond the rate limit."""
    if asks.answering:
        raise Busy("your previous question is still being answered; ask again once it is done")
    check_rate(user, asks.questions, asks.oldest)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def admission(
    store: Store, user: User, *, one_at_a_time: bool, counted: bool = True
) -> Callable[[], None] | None:
    """The check of a user's next question, made where the question is stored.

    The function returned runs first in the write transaction that stores the
    question, on the store's thread: it takes the user's lock, then refuses
    (``Busy``, ``RateLimited``) by what the database holds, so any number of
    instances at once let through no more than one would, and a refused
    question leaves nothing behind. ``counted``: the question counts against
    the rate limit (a regenerated answer does not). None when no rule applies:
    then the transaction takes no lock and runs no statement more.
    """
    limited = counted and user.rate_limit is not None
    if not limited and not one_at_a_time:
        return None

    def admit() -> None:
        store.lock_user(user.id)
        now = datetime.now(UTC)
        asks = store.user_asks(
            user.id,
            since=_stamp(now - RATE_WINDOW) if limited else None,
            live_after=_stamp(now) if one_at_a_time else None,
        )
        check_asks(user, asks)

    return admit


def check_not_answering(store: Store, user: User) -> None:
    """Refuse at once, before waiting for any turn, while a question of the user's is
    answered (a first look, without the lock: :func:`admission` decides)."""
    asks = store.user_asks(user.id, since=None, live_after=_stamp(datetime.now(UTC)))
    check_asks(user, asks)
