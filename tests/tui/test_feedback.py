"""Admin: the Feedback screen lists answers with their counts and texts, and opens one."""

from __future__ import annotations

import asyncio

import pytest

from mschat.core.models import Origin
from mschat.core.services import Services
from mschat.tui.screens.feedback import FeedbackScreen
from tests.tui.conftest import SIZE, build_app, ready, screen_text, wait_for


@pytest.mark.backends
async def test_feedback_screen_lists_answers_with_counts_and_texts(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    bob = await manager.user("discord", "2", "bob")
    session = await manager.create_session(
        alice, title="Ducks", origin=Origin.DISCORD_GUILD, public=True
    )
    store = services.store

    def write() -> tuple[int, int]:
        store.add_message(session_id=session.id, role="user", content="q", author_id=alice.id)
        first = store.add_message(session_id=session.id, role="assistant", content="ducks fly")
        store.add_message(session_id=session.id, role="user", content="q2", author_id=alice.id)
        second = store.add_message(session_id=session.id, role="assistant", content="they swim")
        return first.id, second.id

    first, second = await asyncio.to_thread(write)
    await manager.add_feedback(bob, second, "good")
    await manager.add_feedback(alice, first, "good")
    await manager.add_feedback(bob, first, "inaccurate")
    await manager.add_feedback(bob, first, "other", "they \x1b[2Jmigrate")
    await manager.add_feedback(alice, first, "other", "cite a source")

    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        # from the command palette
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Feedback")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FeedbackScreen), what="screen")
        screen = app.screen
        await wait_for(pilot, lambda: screen.answers, what="feedback")
        assert [a.message_id for a in screen.answers] == [first, second]
        await pilot.pause()
        text = screen_text(app)
        assert "👍 good 1 · outdated 0 · inaccurate 1 · other 2" in text
        assert "👍 good 1 · outdated 0 · inaccurate 0 · other 0" in text
        assert "bob: they ␛[2Jmigrate" in text and "alice: cite a source" in text
        assert "ducks fly" in text and "2 answers with feedback" in text
        await pilot.press("enter")  # opens the first answer in its session
        await wait_for(
            pilot,
            lambda: app.chat.selected is not None and app.chat.selected.message.id == first,
            what="jump",
        )
        assert app.session.id == session.id


async def test_feedback_screen_is_for_admins(services: Services):
    me = await services.manager.local_user()
    await asyncio.to_thread(services.store.update_user, me.id, admin=0)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await app.run_action("feedback")
        await pilot.pause()
        assert not isinstance(app.screen, FeedbackScreen)
        assert any("Only an admin" in n.message for n in app._notifications)
