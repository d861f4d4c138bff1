"""Outside text never reaches the terminal as control sequences, nor as Textual markup.

A session title, an API user's name and a model reply carry a screen clear
(CSI 2J), a clipboard write (OSC 52), a window title (OSC 0), a hyperlink
(OSC 8), a C1 CSI (U+009B) and BEL. The TUI shows them as visible stand-ins,
checked on what Pilot renders and on the bytes the real program writes to a
pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from mschat.config import load_config
from mschat.core.services import Services
from mschat.store.sqlite import SQLiteStore as Store
from mschat.tui.app import MschatApp
from mschat.tui.widgets.chat import LiveReply, MessageView
from tests.conftest import write_config
from tests.fakes.scripted_provider import ScriptedProvider
from tests.tui.conftest import SIZE, build_app, ready, screen_text, type_and_send, wait_for
from tests.tui.terminal import start

CLEAR = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;aGFja2Vk\x07"  # base64 "hacked"
WINDOW_TITLE = "\x1b]0;pwned-title\x07"
LINK = "\x1b]8;;http://evil.example/\x1b\\click-me\x1b]8;;\x1b\\"
C1_CSI = "\x9b31m"
BEL = "\x07"
EVERY = CLEAR + CLIPBOARD + WINDOW_TITLE + LINK + C1_CSI + BEL

TITLE = f"[bold red]markup[/bold red] [link=http://evil.example/]L[/link] Title{EVERY}"
NAME = f"[reverse]api{EVERY}"
REPLY = f"reply-start {EVERY} reply-end [a link](http://evil.example/md)"
ERROR = f"provider said {EVERY} no"
CONFIG = (
    '[general]\ndefault_model = "fake/fake-model"\n'
    '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n'
)
#: the raw control characters that must never reach the screen from data
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def fill(store: Store) -> int:
    """A public session by an API user with hostile title, name, reply and error."""
    me = store.create_user(kind="local", external_id="tester", name="tester", status="active")
    store.update_user(me.id, admin=1, show_public=1)
    evil = store.create_user(kind="api", external_id="evil", name=NAME, status="active")
    session = store.create_session(
        creator_id=evil.id,
        title=TITLE,
        model="fake/fake-model",
        system_msg=None,
        public=1,
        origin="api",
    )
    store.add_message(session_id=session.id, author_id=evil.id, role="user", content="question")
    store.add_message(
        session_id=session.id,
        author_id=None,
        role="assistant",
        content=REPLY,
        model="fake/fake-model",
    )
    store.add_message(
        session_id=session.id,
        author_id=None,
        role="assistant",
        content="half",
        model="fake/fake-model",
        status="failed",
        error=ERROR,
    )
    store.update_user(me.id, current_session_id=session.id)
    return session.id


def assert_shown_safely(app: MschatApp, *texts: str) -> None:
    """The screen holds each text literally and no raw control character."""
    screen = screen_text(app)
    assert not RAW.findall(screen), RAW.findall(screen)
    for text in texts:
        assert text in screen, f"{text!r} not on the screen:\n{screen}"


async def test_pilot_screen_shows_hostile_text_visibly(services: Services):
    fill(services.store)
    evil = (await services.manager.find_user("evil")).id
    app = build_app(services)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: app.chat.views, what="messages")
        await pilot.pause()
        # title (sidebar and title line), name (message header), reply and error text
        assert_shown_safely(
            app,
            "🌐 [bold red]markup[/bold red] [link=http://evil.example/]L[/link] Title␛[2J",
            "[reverse]api␛[2J␛]52;c;aGFja2Vk␇␛]0;pwned-title␇␛]8;;http://evil.example/␛",
            "␛]52;c;aGFja2Vk␇␛]0;pwned-title␇",
            "<U+009B>31m␇ reply-end",
            "error: provider said",
        )
        app.notify(f"note {TITLE}")  # notices carry titles, names and error texts
        await wait_for(pilot, lambda: "note [bold" in screen_text(app), what="the notice")
        assert_shown_safely(app, "note [bold red]markup[/bold red]")

        await pilot.press("f10")  # the admin's user list
        await wait_for(pilot, lambda: app.screen.query("#choices"), what="user list")
        await pilot.pause()
        assert_shown_safely(app, "[reverse]api␛[2J")
        await pilot.press("escape")

        await pilot.press("f8")  # the confirmation names the session
        await pilot.pause()
        assert_shown_safely(app, "Delete session '[bold red]markup[/bold red]")
        await pilot.press("escape")

        await pilot.press("f2")  # the rename dialog holds the title
        await pilot.pause()
        assert_shown_safely(app, "[bold red]markup[/bold red] [link=http://evil.example/]L")
        await pilot.press("escape")

        await pilot.press("ctrl+f")  # search hits: titles and snippets
        await pilot.press(*"reply")
        await wait_for(pilot, lambda: getattr(app.screen, "hits", None), what="hits")
        await pilot.pause()
        assert_shown_safely(app, "[bold red]markup[/bold red]", "␛]52;c;aGFja2Vk␇")
        await pilot.press("escape")

        await app.switch_to(evil)  # the API user's view: banner and settings
        await pilot.pause()
        assert_shown_safely(app, "view: [reverse]api␛[2J")
        await pilot.press("f9")
        await wait_for(pilot, lambda: app.screen.query("#settings-dialog"), what="settings")
        await pilot.pause()
        assert_shown_safely(app, "Settings of [reverse]api␛[2J")


def lines_of(view: MessageView | LiveReply) -> list[str]:
    return ["".join(segment.text for segment in strip) for strip in view._strips]


async def test_a_streamed_reply_is_shown_visibly_while_and_after_it_streams(
    services: Services, provider: ScriptedProvider
):
    gate = asyncio.Event()
    # a CRLF split between two chunks is one newline, not a visible carriage return
    provider.push(chunks=[f"one{CLEAR}{CLIPBOARD}\r", f"\ntwo{C1_CSI}{BEL} end"], gate=gate)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "stream it")
        await wait_for(pilot, lambda: app.query(LiveReply), what="live reply")
        live = app.query_one(LiveReply)
        await wait_for(pilot, lambda: any("one" in line for line in lines_of(live)))
        drawn = "\n".join(lines_of(live))
        assert "one␛[2J␛]52;c;aGFja2Vk␇" in drawn and not RAW.findall(drawn)
        gate.set()
        await wait_for(pilot, lambda: not app.query(LiveReply), what="finished")
        view = list(app.chat.query(MessageView))[-1]
        assert view.message.content == f"one{CLEAR}{CLIPBOARD}\r\ntwo{C1_CSI}{BEL} end"
        adopted = lines_of(view)
        drawn = "\n".join(adopted)
        assert "two<U+009B>31m␇ end" in drawn and "␍" not in drawn and not RAW.findall(drawn)
        view.invalidate()  # the finished message draws what the live reply drew
        view._lines(view.content_size.width)
        assert lines_of(view) == adopted


def test_the_terminal_receives_no_control_sequence_from_data(mschat_home: Path):
    write_config(mschat_home, CONFIG)
    store = Store.open(load_config().db)
    fill(store)
    store.close()
    terminal = start([], dict(os.environ))
    try:
        terminal.wait_for_text("reply-end")
        terminal.wait_for_text("provider said")
        terminal.send(b"\x11")  # Ctrl+Q
        assert terminal.finish() == 0
    finally:
        terminal.close()
    # Textual's own sequences stay (it sets the mouse pointer shape with OSC 22)
    out = re.sub(rb"\x1b\]22;[\w-]*\x07", b"", bytes(terminal.output))
    assert b"\x1b]" not in out  # no clipboard write, window title or hyperlink at all
    assert b"\x07" not in out
    assert b"\xc2\x9b" not in out  # C1 CSI, UTF-8 encoded
    assert CLEAR.encode() + b"\x1b]52" not in out
    for stand_in in ("␛]52;c;aGFja2Vk␇", "␛]0;pwned-title␇", "<U+009B>31m", "␛[2J"):
        assert stand_in.encode() in out
    assert b"http://evil.example/md" in out  # a Markdown link shows where it leads
