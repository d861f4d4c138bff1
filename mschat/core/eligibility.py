"""Who may see, use or edit a session, and who may chat: each rule once.

Every front end asks these questions through the core; none keeps a copy.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mschat.core.errors import ChatDisabled, RateLimited, UserIgnored
from mschat.core.models import Session, Status, User

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
