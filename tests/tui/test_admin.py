"""The admin screen: users, queue, feedback and logs from the core, filters, changes, refusal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from textual.widgets import DataTable, Input, Select, TabbedContent

from mschat.core.answer.turns import stamp
from mschat.core.models import Origin, User
from mschat.core.services import Services
from mschat.tui.app import MschatApp
from mschat.tui.screens.admin import AdminScreen
from mschat.tui.screens.feedback import FeedbackList
from mschat.tui.screens.user_edit import UserEditScreen
from tests.tui.conftest import SIZE, build_app, ready, screen_text, wait_for


async def people(services: Services) -> tuple[User, User]:
    """Two users the admin manages: alice on Discord, bob on the API (who asked once)."""
    manager = services.manager
    admin = await manager.local_user()
    alice = await manager.user("discord", "42", "alice")
    bob = await manager.user("api", "bob-key", "bob \x1b[31m[b]red")
    alice = await manager.update_user(admin, alice.id, priority=3, rate_limit=20)
    [_ async for _ in manager.ask(bob, "hello", new_session=True)]  # an API call
    return alice, bob


def rows(app: MschatApp, table: str) -> list[list[str]]:
    """The cells of an admin table, as plain text."""
    widget = app.screen.query_one(f"#{table}", DataTable)
    return [[cell.plain for cell in widget.get_row_at(i)] for i in range(widget.row_count)]


async def show_tab(pilot, tab: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.click(f"#--content-tab-{tab}")
    await wait_for(pilot, lambda: pilot.app.screen.query_one(TabbedContent).active == tab, what=tab)


async def open_admin(pilot, *, palette: bool = False) -> AdminScreen:  # type: ignore[no-untyped-def]
    """Open the admin screen by its key (F7) or the command palette's "Admin"."""
    app = await ready(pilot)
    if palette:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Admin")
        await pilot.pause(0.3)
        await pilot.press("enter")
    else:
        await pilot.press("f7")
    await wait_for(pilot, lambda: isinstance(app.screen, AdminScreen), what="admin screen")
    screen = app.screen
    assert isinstance(screen, AdminScreen)
    await wait_for(pilot, lambda: len(rows(app, "users-table")) == 3, what="users")
    return screen


@pytest.mark.backends
async def test_admin_sees_users_queue_feedback_and_logs(services: Services):
    manager = services.manager
    alice, bob = await people(services)
    session = await manager.create_session(alice, title="Ducks", origin=Origin.DISCORD_GUILD)
    answer = await asyncio.to_thread(
        services.store.add_message, session_id=session.id, role="assistant", content="quack"
    )
    await manager.add_feedback(alice, answer.id, "other", "cite \x1b[2J it")
    await manager.log_interaction(
        user_id=alice.id,
        source="discord",
        kind="slash_command",
        name="chat",
        payload={"prompt": "hi"},
        status="ok",
    )
    lease = stamp(timedelta(minutes=1))  # another instance's question, waiting for a slot
    await asyncio.to_thread(
        services.store.enqueue, bob.id, "fake", 0, stamp(timedelta(seconds=-2)), lease, None
    )

    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await open_admin(pilot)
        users = {row[2]: row for row in rows(app, "users-table")}
        assert users["alice"][1:8] == ["discord", "alice", "disabled", "", "", "3", "20"]
        assert users["bob ␛[31m[b]red"][1] == "api"
        assert users["tester"][4] == "yes"  # the admin
        # drawn as written: neither markup nor control codes
        await wait_for(pilot, lambda: "bob ␛[31m[b]red" in screen_text(app), what="drawn")
        assert "\x1b" not in screen_text(app)

        await show_tab(pilot, "queue")
        state = app.screen.query_one("#queue-state")
        await wait_for(pilot, lambda: "waiting: 1" in str(state.render()), what="queue")
        assert "paused: no" in str(state.render())

        await show_tab(pilot, "feedback")
        listed = app.screen.query_one(FeedbackList)
        await wait_for(pilot, lambda: listed.shown, what="feedback")
        await pilot.pause()
        assert "alice: cite ␛[2J it" in screen_text(app)

        await show_tab(pilot, "interactions")
        await wait_for(pilot, lambda: rows(app, "interactions-table"), what="interactions")
        [interaction] = rows(app, "interactions-table")
        assert interaction[2:7] == ["alice", "discord", "slash_command", "chat", "ok"]

        await show_tab(pilot, "api_calls")
        await wait_for(pilot, lambda: rows(app, "api_calls-table"), what="API calls")
        [call] = rows(app, "api_calls-table")
        assert call[2:5] == ["bob ␛[31m[b]red", "fake/fake-model", "ok"]

        # opening the answer from the Feedback tab goes to its session
        await show_tab(pilot, "feedback")
        listed.focus_answers()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, AdminScreen), what="closed")
        await wait_for(
            pilot, lambda: app.session is not None and app.session.id == session.id, what="open"
        )


@pytest.mark.backends
async def test_filters_narrow_the_tables(services: Services):
    alice, _ = await people(services)
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="microseconds")
    for name, created in (("user", old), ("chat", None)):
        await asyncio.to_thread(
            services.store.add_interaction,
            user_id=alice.id,
            source="discord",
            kind="slash_command",
            name=name,
            payload={},
            status="ok",
            **({"created": created} if created else {}),
        )
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_admin(pilot)
        filter_ = screen.query_one("#users-filter", Input)
        filter_.focus()
        await pilot.press(*"DISCORD")
        await wait_for(pilot, lambda: len(rows(app, "users-table")) == 1, what="filtered")
        assert rows(app, "users-table")[0][2] == "alice"
        assert "1 of 3 users" in screen_text(app)

        await show_tab(pilot, "interactions")
        await wait_for(pilot, lambda: len(rows(app, "interactions-table")) == 1, what="24 h")
        screen.query_one("#interactions-period", Select).value = "all"
        await wait_for(pilot, lambda: len(rows(app, "interactions-table")) == 2, what="all")
        screen.query_one("#interactions-filter", Input).focus()
        await pilot.press(*"user")
        await wait_for(pilot, lambda: len(rows(app, "interactions-table")) == 1, what="text")
        assert rows(app, "interactions-table")[0][5] == "user"


@pytest.mark.backends
async def test_changing_a_user_from_the_screen_is_stored(services: Services):
    _, bob = await people(services)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_admin(pilot)
        table = screen.query_one("#users-table", DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index(str(bob.id)))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, UserEditScreen), what="dialog")
        dialog = app.screen
        dialog.query_one("#priority", Input).value = "7"
        dialog.query_one("#rate_limit", Input).value = "-1"
        await pilot.press("ctrl+s")  # refused by the core: said, and the dialog stays
        await wait_for(
            pilot,
            lambda: any("rate_limit must be from 0" in n.message for n in app._notifications),
            what="refusal",
        )
        assert app.screen is dialog
        assert (await services.manager.get_user(bob.id)).priority == 0
        dialog.query_one("#rate_limit", Input).value = "0"
        await pilot.click("#ignored")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, what="saved")
        stored = await services.manager.get_user(bob.id)
        assert (stored.priority, stored.rate_limit, stored.ignored) == (7, 0, True)
        await wait_for(
            pilot,
            lambda: (
                [r[5:8] for r in rows(app, "users-table") if r[0] == str(bob.id)]
                == [["ignored", "7", "0 (blocked)"]]
            ),
            what="shown",
        )


async def test_pause_and_resume_from_the_queue_tab(services: Services):
    await people(services)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await open_admin(pilot, palette=True)
        await show_tab(pilot, "queue")
        await pilot.click("#pause")
        admin = await services.manager.local_user()
        state = app.screen.query_one("#queue-state")
        await wait_for(pilot, lambda: "paused: yes (new questions: reject)" in str(state.render()))
        assert (await services.manager.queue_status(admin)).paused
        await pilot.click("#resume")
        await wait_for(pilot, lambda: "paused: no" in str(state.render()), what="resumed")
        assert not (await services.manager.queue_status(admin)).paused


async def test_the_screen_follows_other_instances_changes(services: Services):
    await people(services)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await open_admin(pilot)
        # another process's connection: the app's change feed notices it
        from mschat.store import open_store

        other = await asyncio.to_thread(open_store, services.store.url)
        try:
            await asyncio.to_thread(
                other.create_user, kind="discord", external_id="7", name="carol", status="new"
            )
        finally:
            await asyncio.to_thread(other.close)
        await wait_for(
            pilot, lambda: "carol" in [r[2] for r in rows(app, "users-table")], what="carol"
        )


async def test_the_admin_screen_is_for_admins(services: Services):
    me = await services.manager.local_user()
    await asyncio.to_thread(services.store.update_user, me.id, admin=0)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f7")
        await pilot.pause()
        assert not isinstance(app.screen, AdminScreen)
        assert [n.message for n in app._notifications] == [
            "Only an admin may open the admin screen"
        ]
