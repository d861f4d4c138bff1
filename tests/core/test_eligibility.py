"""The rules of who may see, use and edit a session, and who may chat."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mschat.core import eligibility
from mschat.core.errors import ChatDisabled, PermissionDenied, RateLimited, UserIgnored
from mschat.core.models import Session, User

NOW = datetime.now(UTC).isoformat()


def user(uid: int, **fields: object) -> User:
    values: dict = {
        "id": uid,
        "kind": "api",
        "external_id": f"u{uid}",
        "name": f"u{uid}",
        "created": NOW,
        "updated": NOW,
        "modified": NOW,
        "status": "active",
        **fields,
    }
    return User(**values)


def session(creator: int, public: bool) -> Session:
    return Session(
        id=1,
        creator_id=creator,
        title="t",
        model=None,
        system_msg=None,
        public=public,
        origin="api",
        created=NOW,
        updated=NOW,
        modified=NOW,
    )


@pytest.mark.parametrize(
    ("who", "public", "see", "use", "edit"),
    [
        (user(1), False, True, True, True),  # the creator
        (user(2), False, False, False, False),  # another user, private
        (user(2), True, True, True, False),  # another user, public
        (user(3, admin=True), False, True, False, True),  # admin reads, never writes in
        (user(3, admin=True), True, True, True, True),
    ],
)
def test_see_use_edit(who: User, public: bool, see: bool, use: bool, edit: bool):
    mine = session(creator=1, public=public)
    assert eligibility.can_see(who, mine) is see
    assert eligibility.can_use(who, mine) is use
    assert eligibility.can_edit(who, mine) is edit


def test_refusals_are_typed():
    with pytest.raises(UserIgnored):
        eligibility.check_not_ignored(user(1, ignored=True))
    with pytest.raises(ChatDisabled) as disabled:
        eligibility.check_may_route(user(1, status="disabled"))
    assert isinstance(disabled.value, PermissionDenied)
    eligibility.check_may_route(user(1, status="new"))
    eligibility.check_rate(user(1), used=100, oldest=NOW)  # no limit
    eligibility.check_rate(user(1, rate_limit=3), used=2, oldest=NOW)
    with pytest.raises(RateLimited, match="3 questions per 6 hours; try again after"):
        eligibility.check_rate(user(1, rate_limit=3), used=3, oldest=NOW)
    with pytest.raises(RateLimited, match="rate limit reached: 1 question per 6 hours"):
        eligibility.check_rate(user(1, rate_limit=1), used=1, oldest=NOW)
