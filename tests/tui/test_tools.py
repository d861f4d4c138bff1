"""Tool calls in the TUI: a call that needs confirmation asks in a dialog (Run or
Cancel), and each call of the answer shows as a collapsed block, hostile text visible."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import Collapsible

from mschat.config import load_config
from mschat.core.services import Services, build_services
from mschat.core.tools.toolbox import Toolbox
from mschat.tui.screens.modals import ConfirmScreen
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.mcp_server import make_server
from tests.tui.conftest import SIZE, build_app, ready, screen_text, type_and_send, wait_for


@pytest.fixture
async def tools(mschat_home: Path, db_url: str) -> AsyncIterator[tuple[Services, FakeOpenAI, list]]:
    """Services whose model takes tools, the in-process test MCP server as ``test``."""
    async with FakeOpenAI(chunk_size=7) as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["fake-model"]\n'
            'tools = true\n[mcp.servers.test]\ncommand = "unused"\n',
        )
        config = load_config(db=db_url)
        services = build_services(config)
        ran: list[str] = []
        services.manager.use_tools(Toolbox(config, {"test": make_server(calls=ran)}))
        yield services, server, ran
        await services.aclose()


@pytest.mark.parametrize(("key", "status"), [("y", "ok"), ("n", "denied")])
async def test_a_call_is_confirmed_in_a_dialog_and_shown_as_a_block(
    tools: tuple[Services, FakeOpenAI, list], key: str, status: str
) -> None:
    services, server, ran = tools
    server.push(tool_calls=[("test__echo", {"text": "\x1b[2Jhello"})])
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "use the tool")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the dialog")
        await wait_for(pilot, lambda: "Run tool test/echo?" in screen_text(app), what="it drawn")
        assert "hello" in screen_text(app)
        await pilot.press(key)
        await wait_for(pilot, lambda: app.query(Collapsible), what="the block")
        assert f"🔧 test/echo · {status}" in screen_text(app)
        assert ran == (["echo"] if status == "ok" else [])
        block = app.query_one(Collapsible)
        block.collapsed = False
        await pilot.pause()
        shown = screen_text(app)
        assert "arguments:" in shown
        if status == "ok":  # the echo came back with its escape made visible
            assert "␛[2Jhello" in shown and "\x1b" not in shown
        # opened again, the session shows the stored call above its answer
        assert app.session is not None
        await app.open_session(app.session.id)
        await wait_for(pilot, lambda: app.query(Collapsible), what="the stored block")
        await pilot.pause()
        assert f"🔧 test/echo · {status}" in screen_text(app)
