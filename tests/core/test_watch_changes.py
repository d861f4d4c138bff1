"""``SessionManager.watch_changes``: other instances' changes as batches on the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mschat.core.services import Services, build_services
from mschat.store.contract import Change, ChangeFeed
from tests.conftest import eventually
from tests.fakes.scripted_provider import ScriptedProvider


def feed_threads() -> int:
    return sum(t.name == "mschat-changes" and t.is_alive() for t in threading.enumerate())


async def test_changes_of_another_instance_arrive_and_closing_stops_the_feed(
    services: Services,
):
    manager = services.manager
    before = feed_threads()
    changes = manager.watch_changes(poll_interval=0.02)
    assert await anext(changes) == [Change()]  # listening: load everything now
    assert feed_threads() == before + 1
    other = build_services(services.config, providers={"fake": ScriptedProvider()})
    try:
        me = await other.manager.local_user()
        session = await other.manager.create_session(me, title="elsewhere")
        batch = await asyncio.wait_for(anext(changes), 10)
        while not any(change.concerns_session(session.id) for change in batch):
            batch = await asyncio.wait_for(anext(changes), 10)
    finally:
        await other.aclose()
    await changes.aclose()
    await eventually(lambda: feed_threads() == before)


class BrokenFeed(ChangeFeed):
    """A feed with a bug: its wait raises."""

    def wait(self, timeout: float | None = None) -> list[Change]:
        raise ValueError("a bug in the feed")


async def test_a_feed_that_fails_is_an_error_of_the_watch_not_a_silent_stop(
    services: Services, monkeypatch: pytest.MonkeyPatch
):
    feed = BrokenFeed()
    monkeypatch.setattr(services.store, "changes", lambda poll_interval=0.5: feed)
    changes = services.manager.watch_changes()
    assert await anext(changes) == [Change()]
    with pytest.raises(ValueError, match="a bug in the feed"):
        await asyncio.wait_for(anext(changes), 10)
    assert feed.closed
