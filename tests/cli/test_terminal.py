"""What a real terminal receives from ``mschat``: never a control sequence from outside.

Every test runs the real command on a pseudo-terminal against the loopback fake
OpenAI server and inspects the bytes read from the terminal's master side.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest

from mschat.config import load_config
from mschat.core.services import build_services
from tests.cli.terminal import HOSTILE, Terminal, assert_harmless, mschat
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAIThread

#: how the hostile sequences look once made visible
SHOWN = ("␛[2J", "␛]52;c;aGk=␇", "␛]0;pwned␇", "␛]8;;http://evil.example/", "<U+009B>31m")


@pytest.fixture
def fake() -> Iterator[FakeOpenAIThread]:
    server = FakeOpenAIThread(chunk_size=7)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(mschat_home: Path, fake: FakeOpenAIThread) -> dict[str, str]:
    write_config(
        mschat_home,
        f'[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{fake.base_url}"\nmodels = ["fake-model"]\n'
        "max_retries = 0\n",
    )
    return {**os.environ, "MSCHAT_HOME": str(mschat_home)}


def run_on_terminal(env: dict[str, str], *args: str) -> bytes:
    terminal = Terminal(mschat(*args), env)
    code, received = terminal.finish()
    assert code in (0, 1), received
    return received


def screen_of(received: bytes, rows: int = 24, cols: int = 100) -> list[str]:
    """The lines a terminal shows (scrollback included) after receiving ``received``."""
    screen = pyte.HistoryScreen(cols, rows, history=1000)
    pyte.ByteStream(screen).feed(received)
    scrolled = ["".join(char.data for char in line.values()) for line in screen.history.top]
    return [line.rstrip() for line in scrolled + list(screen.display)]


@pytest.fixture
def hostile_db(env: dict[str, str], fake: FakeOpenAIThread, mschat_home: Path) -> dict[str, int]:
    """An API user named HOSTILE asked HOSTILE in a public session titled HOSTILE."""
    fake.reply = f"zebra {HOSTILE}"

    async def setup() -> dict[str, int]:
        services = build_services(load_config())
        try:
            manager = services.manager
            await manager.local_user()
            api_user = await manager.user("api", "attacker", name=HOSTILE)
            session = await manager.create_session(api_user, title=HOSTILE, public=True)
            async for _ in manager.ask(api_user, f"zebra {HOSTILE}", session_id=session.id):
                pass
            return {"user": api_user.id, "session": session.id}
        finally:
            await services.aclose()

    return asyncio.run(setup())


def stored(home: Path) -> dict[str, object]:
    """What the database holds: the API user's name, the first title, every message."""
    db = sqlite3.connect(home / "mschat.db")
    name = db.execute("SELECT name FROM users WHERE kind = 'api'").fetchone()
    title = db.execute("SELECT title FROM sessions ORDER BY id LIMIT 1").fetchone()
    return {
        "name": name and name[0],
        "title": title and title[0],
        "contents": [row[0] for row in db.execute("SELECT content FROM messages ORDER BY id")],
    }


@pytest.mark.parametrize("mode", [[], ["--no-stream"]])
def test_ask_on_a_terminal_shows_a_hostile_reply_without_obeying_it(
    env: dict[str, str], fake: FakeOpenAIThread, mschat_home: Path, mode: list[str]
):
    fake.reply = HOSTILE
    received = run_on_terminal(env, "ask", *mode, "Say it")
    assert_harmless(received)
    text = received.decode()
    for shown in SHOWN:
        assert shown in text, (shown, text)
    assert stored(mschat_home)["contents"] == ["Say it", HOSTILE]


def test_piped_ask_writes_the_reply_byte_for_byte(env: dict[str, str], fake: FakeOpenAIThread):
    fake.reply = HOSTILE
    done = subprocess.run(mschat("ask", "Say it"), env=env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (HOSTILE + "\n").encode()


@pytest.mark.parametrize(
    "command",
    [
        ["sessions", "list", "--public"],
        ["sessions", "show", "{session}"],
        ["sessions", "search", "zebra"],
        ["sessions", "export", "{session}"],
        ["sessions", "export", "{session}", "-f", "json"],
        ["users", "list"],
        ["users", "show", "{user}"],
        ["ask", "-s", "{session}", "And you?"],
    ],
)
def test_names_titles_and_messages_from_outside_reach_the_terminal_visible(
    env: dict[str, str], hostile_db: dict[str, int], mschat_home: Path, command: list[str]
):
    before = stored(mschat_home)
    args = [part.format(**hostile_db) for part in command]
    received = run_on_terminal(env, *args)
    assert_harmless(received)
    if "--json" not in args and "json" not in args:
        assert "␛]52;c;aGk=␇" in received.decode(), received
    else:  # JSON escapes control characters itself
        assert "\\u001b]52;c;aGk=\\u0007" in received.decode(), received
    after = stored(mschat_home)
    assert (after["name"], after["title"]) == (HOSTILE, HOSTILE)
    assert after["contents"][: len(before["contents"])] == before["contents"]


def test_provider_error_text_is_one_visible_line(
    env: dict[str, str], fake: FakeOpenAIThread, mschat_home: Path
):
    fake.inject("500", times=None, message=f"broken\n{HOSTILE}")
    terminal = Terminal(mschat("ask", "Will it break?"), env)
    code, received = terminal.finish()
    assert code == 1
    assert_harmless(received)
    errors = [line for line in screen_of(received) if line.startswith("Error:")]
    assert len(errors) == 1 and "␛]52;c;aGk=␇" in errors[0], screen_of(received)


def test_exports_to_a_file_or_pipe_are_exact_and_private(
    env: dict[str, str], hostile_db: dict[str, int], tmp_path: Path
):
    session = str(hostile_db["session"])
    for fmt in ("markdown", "json"):
        out = tmp_path / f"export.{fmt}"
        old = os.umask(0o022)
        try:
            done = subprocess.run(
                mschat("sessions", "export", session, "-f", fmt, "-o", str(out)),
                env=env,
                capture_output=True,
                timeout=30,
            )
        finally:
            os.umask(old)
        assert done.returncode == 0, done.stderr
        assert out.stat().st_mode & 0o777 == 0o600
        piped = subprocess.run(
            mschat("sessions", "export", session, "-f", fmt),
            env=env,
            capture_output=True,
            timeout=30,
        )
        assert piped.stdout == out.read_bytes()
    assert HOSTILE in (tmp_path / "export.markdown").read_text()


def test_ctrl_c_shows_the_partial_reply_once_and_one_notice(
    env: dict[str, str], fake: FakeOpenAIThread, mschat_home: Path
):
    fake.push(reply="".join(f"w{i:03d} " for i in range(400)), delay=0.02)
    terminal = Terminal(mschat("ask", "Talk for a long time"), env)
    terminal.wait_for(lambda out: b"w010" in out)
    terminal.process.send_signal(signal.SIGINT)
    code, received = terminal.finish()
    assert code == 130
    shown = "\n".join(screen_of(received))
    assert shown.count("w000") == 1 and shown.count("w010") == 1, shown
    assert shown.lower().count("interrupted") == 1, shown
    content = (
        sqlite3.connect(mschat_home / "mschat.db")
        .execute("SELECT content, status FROM messages WHERE role = 'assistant'")
        .fetchone()
    )
    assert content[1] == "interrupted" and content[0].startswith("w000 ")


def test_a_retry_prints_one_line(env: dict[str, str], fake: FakeOpenAIThread, mschat_home: Path):
    write_config(
        mschat_home,
        f'[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{fake.base_url}"\nmodels = ["fake-model"]\n'
        "max_retries = 2\n",
    )
    fake.inject("503", times=1)
    code, received = Terminal(mschat("ask", "Try again"), env).finish()
    assert code == 0
    shown = screen_of(received)
    assert "Echo: Try again" in shown, shown
    assert len([line for line in shown if "503" in line]) == 1, shown


def test_spinner_until_the_first_token_leaves_nothing_behind(
    env: dict[str, str], fake: FakeOpenAIThread
):
    fake.push(reply="Finally here.", delay=0.6, chunk_size=100)
    terminal = Terminal(mschat("ask", "Slow one"), env)
    terminal.wait_for(lambda out: b"waiting for" in out)
    code, received = terminal.finish()
    assert code == 0
    assert any(frame.encode() in received for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
    lines = [line for line in screen_of(received) if line]
    assert lines == ["Finally here."], lines


def test_no_spinner_on_a_piped_stderr(env: dict[str, str], fake: FakeOpenAIThread):
    fake.push(reply="Finally here.", delay=0.6, chunk_size=100)
    terminal = Terminal(mschat("ask", "Slow one"), env, pipe_stderr=True)
    code, received = terminal.finish()
    assert code == 0
    assert terminal.stderr() == b""
    assert not any(frame.encode() in received for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


def test_rm_names_the_sessions_it_asks_about(env: dict[str, str], mschat_home: Path):
    for prompt in ("Zebras and stripes", "Giraffes and necks"):
        done = subprocess.run(mschat("ask", prompt), env=env, capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
    titles = dict(
        sqlite3.connect(mschat_home / "mschat.db").execute("SELECT id, title FROM sessions")
    )
    terminal = Terminal(mschat("sessions", "rm", "1", "2"), env)
    terminal.wait_for(lambda out: b"[y/N]" in out)
    question = bytes(terminal.output).decode()
    assert f"1 ({titles[1]}, 2 messages)" in question, question
    assert f"2 ({titles[2]}, 2 messages)" in question, question
    terminal.write(b"n\r")
    code, _ = terminal.finish()
    assert code == 1
    count = sqlite3.connect(mschat_home / "mschat.db").execute("SELECT count(*) FROM sessions")
    assert count.fetchone()[0] == 2
