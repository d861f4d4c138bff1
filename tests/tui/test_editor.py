"""Ctrl+E writes the prompt in $VISUAL / $EDITOR; the text comes back into the prompt, unsent."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.services import Services
from tests.conftest import write_config
from tests.tui.conftest import SIZE, build_app, ready, wait_for
from tests.tui.terminal import start

#: appends a line to the file it is given and moves its mtime on (click.edit only
#: takes the text back when the file was saved)
EDITOR = """\
import os, sys
path = sys.argv[1]
with open(path, "a", encoding="utf-8") as file:
    file.write("added in the editor\\n")
stat = os.stat(path)
os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))
"""


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A scripted $EDITOR (and no $VISUAL, which would win)."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR, encoding="utf-8")
    command = f'"{sys.executable}" "{script}"'
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", command)
    return command


async def test_ctrl_e_puts_the_edited_text_into_the_prompt(services: Services, editor: str):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        # the headless test driver cannot hand the terminal over; a real one can
        app.suspend = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        app.prompt.text = "draft question"
        await pilot.press("ctrl+e")
        await wait_for(pilot, lambda: "editor" in app.prompt.text, what="edited text")
        assert app.prompt.text == "draft question\nadded in the editor"
        assert app.prompt.has_focus
        await app.workers.wait_for_complete()
        assert await services.manager.list_sessions(app.me) == []  # not sent


async def test_the_editor_key_is_listed(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        active = app.screen.active_bindings["ctrl+e"]
        # in the footer, and before the prompt's own ctrl+e (end of line)
        assert (active.binding.action, active.binding.description) == ("app.edit_prompt", "Editor")
        assert active.binding.show


def test_the_editor_opens_on_a_real_terminal(mschat_home: Path, editor: str):
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n',
    )
    database = Path(load_config().db)
    terminal = start([], dict(os.environ))
    try:
        terminal.wait_for_text("Enter sends")
        terminal.send(b"my draft")
        terminal.wait_for_text("my draft")
        terminal.send(b"\x05")  # Ctrl+E
        terminal.wait_for_text("added in the editor")
        terminal.send(b"\r")  # now the user sends it
        deadline = time.monotonic() + 20
        while not stored_questions(database):
            assert time.monotonic() < deadline, "the edited question was not stored"
            terminal.read_some()
        terminal.send(b"\x11")  # Ctrl+Q
        assert terminal.finish() == 0
    finally:
        terminal.close()
    assert stored_questions(database) == ["my draft\nadded in the editor"]


def stored_questions(database: Path) -> list[str]:
    """The users' messages in the database (read-only, another process writes it)."""
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        try:
            rows = conn.execute("SELECT content FROM messages WHERE role = 'user'").fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []
    return [row[0] for row in rows]
