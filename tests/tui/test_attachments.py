"""Files in the TUI: F6 attaches by path (Tab completes), chips show above the prompt
and on the sent question, the model gets them, F7 opens a file of a message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.core.services import Services
from mschat.tui.screens.attach import AttachScreen
from tests.conftest import scripted_services, vision_config
from tests.fakes.scripted_provider import ScriptedProvider
from tests.tui.conftest import SIZE, build_app, ready, screen_text, type_and_send, wait_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


@pytest.fixture
async def services(
    mschat_home: Path, provider: ScriptedProvider, db_url: str
) -> AsyncIterator[Services]:
    """A default model that sees images."""
    config = vision_config("")
    async with scripted_services(mschat_home, provider, db_url, config) as built:
        yield built


async def test_attach_by_path_send_and_open(
    services: Services,
    provider: ScriptedProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "cat-on-a-mat.png").write_bytes(PNG)
    (tmp_path / "notes.md").write_text("# plan\n")
    monkeypatch.setenv("HOME", str(tmp_path))  # the downloads folder is ~/Downloads
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    downloads = tmp_path / "Downloads"
    monkeypatch.chdir(tmp_path)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen), what="the dialog")
        await pilot.press(*"pictures/cat")
        await pilot.press("tab")  # completes to pictures/cat-on-a-mat.png
        await wait_for(
            pilot,
            lambda: app.screen.query_one("#path").value == "pictures/cat-on-a-mat.png",
            what="the completion",
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.pending_files, what="the file")
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen), what="the dialog")
        await pilot.press(*"notes.md", "enter")
        await wait_for(pilot, lambda: len(app.pending_files) == 2, what="the second file")
        assert "📎 cat-on-a-mat.png" in screen_text(app) and "📎 notes.md" in screen_text(app)

        await type_and_send(pilot, "What is this?")
        await wait_for(pilot, lambda: provider.requests, what="the question")
        sent = provider.requests[-1].messages[-1]
        assert [i.data for i in sent.images] == [PNG]
        assert '<file name="notes.md">' in sent.content
        await wait_for(pilot, lambda: not app.pending_files, what="the chips cleared")
        await wait_for(
            pilot, lambda: "🖼 cat-on-a-mat.png" in screen_text(app), what="the message's chips"
        )
        assert "image/png · 80 bytes" in screen_text(app)

        app.chat.focus()
        await pilot.press("up")  # select the question: its files
        await pilot.press("o")  # two files: which one?
        await pilot.pause()
        await pilot.press("enter")  # the first
        saved = downloads / "cat-on-a-mat.png"
        await wait_for(
            pilot, lambda: saved.exists() and saved.read_bytes() == PNG, what="the download"
        )


async def test_a_missing_file_is_one_notice_and_nothing_is_attached(
    services: Services, tmp_path: Path
) -> None:
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen), what="the dialog")
        await pilot.press(*str(tmp_path / "nope.png"), "enter")
        await wait_for(
            pilot,
            lambda: any("No such file" in str(n.message) for n in app._notifications),
            what="the notice",
        )
        assert app.pending_files == []
