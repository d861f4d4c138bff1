"""Operating the deployment from any front end: the queue's state, pause and resume (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mschat.core.answer.turns import stamp
from mschat.core.costs import parse_since
from mschat.core.errors import InvalidInput, PermissionDenied
from mschat.core.services import Services, build_services
from tests.fakes.scripted_provider import ScriptedProvider


async def test_queue_status_and_pause_are_an_admins(services: Services):
    manager = services.manager
    admin = await manager.local_user()
    guest = await manager.user("api", "guest")
    with pytest.raises(PermissionDenied):
        await manager.queue_status(guest)
    with pytest.raises(PermissionDenied):
        await services.set_paused(guest, True)
    lease = stamp(timedelta(minutes=1))
    services.store.enqueue(guest.id, "fake", 0, stamp(timedelta(seconds=-3)), lease, None)
    state = await manager.queue_status(admin)
    assert (state.paused, state.when_paused, state.waiting, state.running) == (
        False,
        "reject",
        1,
        {},
    )
    assert state.oldest_wait is not None and state.oldest_wait >= 3
    assert await services.set_paused(admin, True) == "reject"
    # another instance on the database sees it (it reads the settings it stores)
    other = build_services(services.config, providers={"fake": ScriptedProvider()})
    try:
        other.live.refresh()
        assert (await other.manager.queue_status(admin)).paused
        await other.set_paused(admin, False)
    finally:
        await other.aclose()
    services.live.refresh()
    assert not (await manager.queue_status(admin)).paused


def test_periods_of_every_unit_and_any_size():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_since("90s", now) == "2026-12-02T11:58:30.000000+00:00"
    assert parse_since("1h", now) == "2026-12-02T11:00:00.000000+00:00"
    assert parse_since("99999999999999d", now).startswith("0001-01-01")  # all of it
    with pytest.raises(InvalidInput):
        parse_since("yesterday", now)


async def test_priority_and_rate_limit_are_bounded_whole_numbers(services: Services):
    manager = services.manager
    admin = await manager.local_user()
    bob = await manager.user("api", "bob")
    for changes in (
        {"priority": 2**40},
        {"priority": "high"},
        {"rate_limit": -1},
        {"rate_limit": 10**30},
    ):
        with pytest.raises(InvalidInput, match=next(iter(changes))):
            await manager.update_user(admin, bob.id, **changes)
    bob = await manager.update_user(admin, bob.id, priority="-3", rate_limit="0")
    assert (bob.priority, bob.rate_limit) == (-3, 0)
    bob = await manager.update_user(admin, bob.id, priority="", rate_limit="")
    assert (bob.priority, bob.rate_limit) == (0, None)
