"""Search, settings, the admin view, live updates from another process, paging."""

from __future__ import annotations

import asyncio

import pytest

from mschat.core.models import MessageStatus, Origin
from mschat.core.services import Services
from mschat.store import open_store
from mschat.tui.screens.search import SearchScreen
from mschat.tui.screens.settings import SettingsScreen
from mschat.tui.widgets.chat import MESSAGE_PAGE, MessageView
from mschat.tui.widgets.sidebar import PAGE_SIZE
from tests.tui.conftest import SIZE, build_app, ready, wait_for


def shown(app) -> list[str]:
    return [v.message.content for v in app.chat.query(MessageView)]


async def fill(services: Services, user, title: str, count: int, word: str = "filler"):
    """A session with ``count`` messages written straight through the store."""
    session = await services.manager.create_session(user, title=title)
    store = services.store

    def write() -> None:
        for index in range(count):
            store.add_message(
                session_id=session.id,
                author_id=user.id,
                role="user",
                content=f"{word} message {index}",
            )

    await asyncio.to_thread(write)
    return session


async def test_search_jumps_to_the_message(services: Services):
    manager = services.manager
    me = await manager.local_user()
    target = await fill(services, me, "Long session", 120)
    await fill(services, me, "Other", 3, word="unrelated")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+f")
        assert isinstance(app.screen, SearchScreen)
        await pilot.press(*"message 7")
        await wait_for(pilot, lambda: app.screen.hits, what="hits")
        hits = app.screen.hits
        assert all(h.session_id == target.id for h in hits)
        wanted = next(h for h in hits if any(t == "7" for t, matched in h.parts() if matched))
        index = hits.index(wanted)
        await pilot.press("enter")  # from the query box to the hits
        app.screen.query_one("#hits").highlighted = index
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: (
                app.chat.selected is not None and app.chat.selected.message.id == wanted.message_id
            ),
            what="jump",
        )
        assert app.session.id == target.id
        assert app.chat.selected.message.content == "filler message 7"


async def test_user_settings_are_saved_and_invalid_values_reported(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        screen = app.screen
        screen.query_one("#temperature").value = "5"
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: any("temperature" in n.message for n in app._notifications), what="error"
        )
        assert app.screen is screen  # still open, nothing lost
        screen.query_one("#temperature").value = "1.2"
        screen.query_one("#max_tokens").value = "300"
        screen.query_one("#show_public").value = True
        screen.query_one("#attach").value = True
        screen.query_one("#status").value = "new"
        screen.query_one("#model").value = "fake/other"
        screen.query_one("#system_msg").text = "Be brief."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen), what="saved")
        user = await services.manager.get_user(app.me.id)
        assert (user.temperature, user.max_tokens, user.show_public, user.attach) == (
            1.2,
            300,
            True,
            True,
        )
        assert (user.status, user.model, user.system_msg) == ("new", "fake/other", "Be brief.")
        assert app.viewer.temperature == 1.2


async def test_admin_view_of_a_discord_user(services: Services):
    manager = services.manager
    me = await manager.local_user()
    alice = await manager.user("discord", "4242", "alice")
    private = await fill(services, alice, "Alice private", 2, word="secret")
    await fill(services, me, "Mine", 1)
    app = build_app(services, user_ref="alice")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.viewer.id == alice.id
        assert "alice (discord:4242)" in app.status.view_label
        assert "admin" in app.status.view_label
        assert [s.title for s in app.sidebar.sessions] == ["Alice private"]
        assert app.session.id == private.id
        assert shown(app) == ["secret message 0", "secret message 1"]
        # the local admin may rename and change status of anyone
        await app.run_action("rename")
        await pilot.pause()
        app.screen.query_one("#value").value = "Moderated"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session.title == "Moderated", what="rename")
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        app.screen.query_one("#status").value = "active"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.viewer.status == "active", what="status")
        assert (await manager.get_user(alice.id)).status == "active"
        # switching back to oneself through the picker
        await pilot.press("f10")
        await wait_for(pilot, lambda: app.screen.query("#choices"), what="user picker")
        ids = [key for key, _ in app.screen.choices]
        app.screen.query_one("#choices").highlighted = ids.index(str(me.id))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.viewer.id == me.id, what="switch")
        assert [s.title for s in app.sidebar.sessions] == ["Mine"]
        # all users' sessions, for the admin
        await pilot.press("f12")
        await wait_for(pilot, lambda: len(app.sidebar.sessions) == 2, what="everyone")


@pytest.mark.backends
async def test_live_update_from_another_connection(services: Services):
    manager = services.manager
    bob = await manager.user("discord", "77", "bob")
    session = await manager.create_session(bob, title="Bot chat", origin=Origin.DISCORD_GUILD)
    app = build_app(services, user_ref="bob")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session.id == session.id and shown(app) == []
        other = await asyncio.to_thread(open_store, services.config.db)  # like the bot's
        try:
            await asyncio.to_thread(
                other.add_message,
                session_id=session.id,
                author_id=bob.id,
                role="user",
                content="question from discord",
            )
            await wait_for(
                pilot, lambda: shown(app) == ["question from discord"], what="remote question"
            )
            reply = await asyncio.to_thread(
                other.add_message,
                session_id=session.id,
                author_id=None,
                role="assistant",
                content="Partial",
                status=MessageStatus.STREAMING.value,
                model="fake/fake-model",
            )
            await wait_for(pilot, lambda: shown(app)[-1:] == ["Partial"], what="streaming")
            await asyncio.to_thread(other.update_message, reply.id, content="Partial answer")
            await wait_for(
                pilot, lambda: shown(app)[-1:] == ["Partial answer"], what="streaming update"
            )
            await asyncio.to_thread(
                other.update_message,
                reply.id,
                content="Partial answer, done.",
                status=MessageStatus.COMPLETE.value,
            )
            await wait_for(
                pilot,
                lambda: app.chat.views[reply.id].message.status == "complete",
                what="completion",
            )
            assert shown(app) == ["question from discord", "Partial answer, done."]
            created = await asyncio.to_thread(
                other.create_session,
                creator_id=bob.id,
                title="Second bot chat",
                model=None,
                system_msg=None,
                public=1,
                origin="discord_guild",
            )
            await wait_for(
                pilot,
                lambda: app.sidebar.sessions and app.sidebar.sessions[0].id == created.id,
                what="new session listed",
            )
        finally:
            await asyncio.to_thread(other.close)


async def test_opens_on_the_last_page_and_loads_older(services: Services):
    me = await services.manager.local_user()
    await fill(services, me, "Big", MESSAGE_PAGE * 2 + 5)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert len(shown(app)) == MESSAGE_PAGE
        assert shown(app)[-1] == f"filler message {MESSAGE_PAGE * 2 + 4}"
        app.chat.scroll_home(animate=False, immediate=True)
        await wait_for(pilot, lambda: len(shown(app)) == MESSAGE_PAGE * 2, what="older page")
        await wait_for(pilot, lambda: not app.chat.loading_older, what="older page in view")
        assert app.chat.scroll_y > 0  # the previously first message stays in view
        app.chat.scroll_home(animate=False, immediate=True)
        await wait_for(pilot, lambda: len(shown(app)) == MESSAGE_PAGE * 2 + 5, what="oldest")
        assert not app.chat.has_older
        assert shown(app)[0] == "filler message 0"


async def test_sidebar_loads_further_pages(services: Services):
    me = await services.manager.local_user()

    def write() -> None:
        for index in range(PAGE_SIZE + 20):
            services.store.create_session(
                creator_id=me.id,
                title=f"Session {index}",
                model="fake/fake-model",
                system_msg=None,
                public=0,
                origin="terminal",
            )

    await asyncio.to_thread(write)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert len(app.sidebar.sessions) == PAGE_SIZE
        app.sidebar.focus()
        await pilot.press("end")
        await wait_for(pilot, lambda: len(app.sidebar.sessions) == PAGE_SIZE + 20, what="page 2")
        assert app.sidebar.exhausted
        assert len({s.id for s in app.sidebar.sessions}) == PAGE_SIZE + 20


async def test_admin_user_list_shows_each_users_cost(services: Services):
    services.config.prices["fake/fake-model"] = {"input": 1e6, "output": 1e6}
    manager = services.manager
    me = await manager.local_user()
    other = await manager.user("api", "bob", name="bob")
    quiet = await manager.user("api", "quiet", name="quiet")
    async for _ in manager.ask(other, "hello", new_session=True):
        pass
    [total] = await asyncio.to_thread(services.store.usage_totals, user_id=other.id)
    spent = total.tokens_in + total.tokens_out
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f10")  # the admin's user list
        await wait_for(pilot, lambda: app.screen.query("#choices"), what="user list")
        labels = {key: label for key, label in app.screen.choices}
        assert labels[str(other.id)].endswith(f"· 30 days: {spent:.4f} USD")
        assert "30 days" not in labels[str(quiet.id)]  # no answers: no figure
        assert "30 days" not in labels[str(me.id)]
