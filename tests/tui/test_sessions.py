"""Managing sessions from the TUI: rename, delete, public, model, system, copy, export."""

from __future__ import annotations

import json
from pathlib import Path

from mschat.core.services import Services
from mschat.providers.base import ModelInfo
from mschat.tui.screens.modals import ChoiceScreen, ConfirmScreen, TextInputScreen
from mschat.tui.screens.settings import SettingsScreen
from mschat.tui.widgets.chat import MessageView
from tests.fakes.scripted_provider import ScriptedProvider
from tests.tui.conftest import SIZE, build_app, ready, type_and_send, wait_for


async def open_app_with_session(pilot, services: Services, title: str = "Topic"):
    app = await ready(pilot)
    session = await services.manager.create_session(app.me, title=title)
    await app.open_session(session.id)
    await app._reload_sidebar()
    return app, session


async def test_rename_from_the_key_binding(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        app, session = await open_app_with_session(pilot, services)
        await pilot.press("f2")
        assert isinstance(app.screen, TextInputScreen)
        app.screen.query_one("#value").value = "Renamed topic"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session.title == "Renamed topic", what="rename")
        stored = await services.manager.get_session(app.me, session.id)
        assert stored.title == "Renamed topic"
        assert "Renamed topic" in str(app.sidebar.get_option(str(session.id)).prompt)


async def test_delete_asks_first(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        app, session = await open_app_with_session(pilot, services)
        await pilot.press("f8")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # cancelled: nothing happens
        await app.workers.wait_for_complete()
        assert app.session.id == session.id
        await pilot.press("f8")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.session is None, what="deletion")
        assert app.sidebar.sessions == []
        assert await services.manager.list_sessions(app.me) == []


async def test_toggle_public_model_and_system_message(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        app, session = await open_app_with_session(pilot, services)
        assert not session.public
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.session.public, what="public")
        assert "🌐" in str(app.sidebar.get_option(str(session.id)).prompt)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="model picker")
        ids = [key for key, _ in app.screen.choices]
        assert "fake/other" in ids and "fake/fake-model" in ids
        app.screen.query_one("#choices").highlighted = ids.index("fake/other")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session.model == "fake/other", what="model")
        await pilot.press("ctrl+g")
        app.screen.query_one("#value").text = "Answer like a pirate."
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: app.session.system_msg == "Answer like a pirate.", what="system message"
        )
        stored = await services.manager.get_session(app.me, session.id)
        assert (stored.public, stored.model, stored.system_msg) == (
            True,
            "fake/other",
            "Answer like a pirate.",
        )


async def test_copy_a_code_block_and_export(
    services: Services, provider: ScriptedProvider, tmp_path: Path
):
    provider.push(chunks=["Here:\n\n```python\n", "print('hi')\n", "```\n"])
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "code please")
        await wait_for(pilot, lambda: len(app.chat.query(MessageView)) == 2, what="reply")
        await pilot.press("f5")
        assert isinstance(app.screen, ChoiceScreen)
        assert [key for key, _ in app.screen.choices] == ["all", "0"]
        app.screen.query_one("#choices").highlighted = 1
        await pilot.press("enter")
        assert app.clipboard == "print('hi')\n"
        target = tmp_path / "out.json"
        await app.run_action("export_json")
        await pilot.pause()
        assert isinstance(app.screen, TextInputScreen)
        app.screen.query_one("#value").value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, target.exists, what="export file")
        data = json.loads(target.read_text(encoding="utf-8"))
        assert data["messages"][0]["content"] == "code please"


async def test_palette_lists_the_actions(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"new sess")
        await wait_for(
            pilot,
            lambda: (
                "New session"
                in str(app.screen.query("CommandList").first().get_option_at_index(0).prompt)
                if app.screen.query("CommandList")
                and app.screen.query("CommandList").first().option_count
                else False
            ),
            what="palette hit",
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session is not None, what="new session")
        assert app.session.title == "New session"


def listed(services: Services, *names: str) -> None:
    """Make the core's model list hold ``names`` besides the configured models."""
    manager = services.manager
    configured = manager.list_models

    async def list_models(*, refresh: bool = False) -> list[ModelInfo]:
        extra = [ModelInfo(n, n.partition("/")[0], n.partition("/")[2]) for n in names]
        return [*await configured(refresh=refresh), *extra]

    manager.list_models = list_models  # type: ignore[method-assign]


async def test_model_pickers_use_the_cores_model_list(services: Services):
    listed(services, "fake/discovered-model")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        app, _ = await open_app_with_session(pilot, services)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="model picker")
        assert "fake/discovered-model" in [key for key, _ in app.screen.choices]
        await pilot.press("escape")
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        assert "fake/discovered-model" in app.screen.models


async def test_an_unknown_model_is_an_error_notice(services: Services):
    listed(services, "gone/old-model")  # listed a moment ago, its provider removed since
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        app, session = await open_app_with_session(pilot, services)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="model picker")
        ids = [key for key, _ in app.screen.choices]
        app.screen.query_one("#choices").highlighted = ids.index("gone/old-model")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any("unknown model" in n.message for n in app._notifications),
            what="error notice",
        )
        assert app.is_running and app.session.model == "fake/fake-model"
        stored = await services.manager.get_session(app.me, session.id)
        assert stored.model == "fake/fake-model"
