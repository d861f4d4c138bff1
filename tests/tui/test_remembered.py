"""What the TUI remembers between runs (per MSCHAT_HOME): the open session and the theme."""

from __future__ import annotations

from mschat.core.services import Services
from mschat.state import State
from mschat.tui.app import STATE_SESSIONS, STATE_THEME
from tests.tui.conftest import SIZE, build_app, ready, wait_for


async def test_reopens_the_session_last_open_in_the_tui(services: Services):
    manager = services.manager
    me = await manager.local_user()
    older = await manager.create_session(me, title="Older topic")
    await manager.create_session(me, title="Newest topic")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session is not None and app.session.title == "Newest topic"
        await app.open_session(older.id)
    remembered = State.of_home().get(STATE_SESSIONS)
    assert remembered == {str(services.store.path): {str(me.id): older.id}}

    again = build_app(services)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.session is not None and again.session.id == older.id
        assert again.sidebar.highlighted == [s.id for s in again.sidebar.sessions].index(older.id)


async def test_a_removed_remembered_session_falls_back_to_the_newest(services: Services):
    manager = services.manager
    me = await manager.local_user()
    gone = await manager.create_session(me, title="Soon gone")
    newest = await manager.create_session(me, title="Newest topic")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await app.open_session(gone.id)
    await manager.remove_session(me, gone.id)

    again = build_app(services)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.session is not None and again.session.id == newest.id


async def test_another_database_does_not_reuse_the_remembered_id(services: Services):
    me = await services.manager.local_user()
    session = await services.manager.create_session(me, title="Elsewhere")
    State.of_home().set(STATE_SESSIONS, {"/some/other.db": {str(me.id): session.id + 7}})
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session is not None and app.session.id == session.id


async def test_the_chosen_theme_is_remembered(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.theme != "nord"
        app.theme = "nord"  # what the palette's "Change theme" does
        await wait_for(pilot, lambda: State.of_home().get(STATE_THEME) == "nord", what="saved")

    again = build_app(services)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.theme == "nord"


async def test_an_unknown_remembered_theme_is_ignored(services: Services):
    State.of_home().set(STATE_THEME, "no-such-theme")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.theme == "textual-dark"
