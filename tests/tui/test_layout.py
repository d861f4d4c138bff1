"""The layout at any terminal width, and dialog fields drawn at their full size."""

from __future__ import annotations

import pytest
from textual.widgets import Select

from mschat.core.services import Services
from mschat.tui.app import MschatApp
from mschat.tui.screens.settings import SettingsScreen
from mschat.tui.widgets.status import WAITING
from tests.tui.conftest import build_app, ready, screen_lines, wait_for


def line_of(app: MschatApp, widget_id: str) -> str:
    """The screen line a one-line widget of the main screen is drawn on."""
    widget = app.screen.query_one(f"#{widget_id}")
    return screen_lines(app)[widget.region.y][widget.region.x : widget.region.right]


async def open_long_session(services: Services) -> int:
    me = await services.manager.local_user()
    session = await services.manager.create_session(
        me, title="Quarterly planning of the infrastructure budget", model="fake/fake-model"
    )
    return session.id


@pytest.mark.parametrize("columns", [40, 60, 80, 120])
async def test_status_and_session_stay_visible_at_any_width(services: Services, columns: int):
    await open_long_session(services)
    app = build_app(services)
    async with app.run_test(size=(columns, 24)) as pilot:
        await ready(pilot)
        await pilot.pause()
        status = line_of(app, "status")
        assert "fake-model" in status and status.rstrip().endswith("idle"), status
        if columns >= 120:
            assert "view: tester (admin)" in status and "model: fake/fake-model" in status
        assert "Quarterly" in line_of(app, "session-title")
        assert app.prompt.region.width >= columns // 2
        app.status.tokens, app.status.context_window, app.status.trimmed = 1234, 4096, 3
        app.status.state = WAITING
        await pilot.pause()
        status = line_of(app, "status")
        assert "fake-model" in status and "waiting" in status, status


async def test_a_narrow_terminal_shows_the_sidebar_on_request(services: Services):
    session_id = await open_long_session(services)
    app = build_app(services)
    async with app.run_test(size=(50, 20)) as pilot:
        await ready(pilot)
        sidebar_pane = app.screen.query_one("#sidebar-pane")
        assert not sidebar_pane.display or sidebar_pane.region.width == 0
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.sidebar.has_focus and app.sidebar.region.width >= 40
        assert any("Quarterly" in line for line in screen_lines(app))
        await pilot.press("enter")  # choosing a session gives the chat its place back
        await wait_for(pilot, lambda: app.prompt.has_focus, what="back to the chat")
        assert app.session is not None and app.session.id == session_id
        assert app.prompt.region.width >= 40


async def test_settings_status_field_is_a_full_select(services: Services):
    app = build_app(services)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        await pilot.pause()
        status = app.screen.query_one("#status", Select)
        model = app.screen.query_one("#model", Select)
        assert status.region.height == model.region.height == 3
        drawn = screen_lines(app)[status.region.y + 1]
        assert "active" in drawn[status.region.x : status.region.right]
