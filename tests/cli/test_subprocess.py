"""The CLI as a real process: streaming, piping, signals, odd argv, $EDITOR, completion."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mschat.providers.local import bundled_provider_config
from tests.conftest import fake_model_config
from tests.fakes.fake_openai import FakeOpenAIThread

HAVE_MODEL = bundled_provider_config() is not None


@pytest.fixture
def env(mschat_home: Path, fake_thread: FakeOpenAIThread) -> dict[str, str]:
    fake_model_config(mschat_home, fake_thread.base_url)
    return {**os.environ, "MSCHAT_HOME": str(mschat_home), "PYTHONUNBUFFERED": "1"}


def mschat(*args: str) -> list[str]:
    return [sys.executable, "-m", "mschat", *args]


def test_ask_in_a_real_process_with_piped_stdin(env: dict[str, str], mschat_home: Path):
    done = subprocess.run(
        mschat("ask", "Count the lines"),
        input="a\nb\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Echo: Count the lines")
    listed = subprocess.run(
        mschat("sessions", "list"), env=env, capture_output=True, text=True, timeout=30
    )
    assert "Count the lines" in listed.stdout


def test_ctrl_c_keeps_what_arrived_as_interrupted(
    env: dict[str, str], mschat_home: Path, fake_thread: FakeOpenAIThread
):
    fake_thread.push(reply="word " * 400, delay=0.02)
    process = subprocess.Popen(
        mschat("ask", "Talk for a long time"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    received = b""
    deadline = time.monotonic() + 20
    while len(received) < 20 and time.monotonic() < deadline:
        if selector.select(timeout=1):
            received += os.read(process.stdout.fileno(), 4096)
    assert received, "no streamed output before the deadline"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    printed = (received + out).decode()
    assert printed.startswith("Echo:") or printed.startswith("word")
    assert b"interrupted" in err
    status, content = (
        sqlite3.connect(mschat_home / "mschat.db")
        .execute("SELECT status, content FROM messages WHERE role = 'assistant'")
        .fetchone()
    )
    assert status == "interrupted"
    assert content and printed.strip().startswith(content.strip()[:10])


def test_ask_imports_no_front_end_library(env: dict[str, str]):
    """`mschat ask` starts fast: no Textual, discord.py, aiohttp, openai or sqlite-utils,
    no PostgreSQL driver (on SQLite), none of the other command groups' modules, and
    none of the core's costs, feedback and export.

    (sqlite-utils is needed only to create or migrate the database: the first run.)
    """
    first = subprocess.run(mschat("ask", "create the db"), env=env, capture_output=True)
    assert first.returncode == 0
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['mschat', 'ask', 'hi']\n"
        "try:\n"
        "    runpy.run_module('mschat', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ['textual', 'discord', 'aiohttp', 'openai', 'sqlite_utils', 'llama_cpp',"
        " 'numpy', 'pydantic', 'psycopg', 'psycopg_pool', 'mschat.store.postgres',"
        " 'mschat.tui', 'mschat.api', 'mschat.discord', 'mschat.cli.sessions',"
        " 'mschat.cli.users', 'mschat.cli.models', 'mschat.cli.config', 'mschat.cli.launchers',"
        " 'textual_serve', 'jinja2', 'aiohttp_jinja2', 'mschat.admin_web',"
        # the core's modules a plain ask has no use for
        " 'mschat.core.costs', 'mschat.core.feedback', 'mschat.core.export',"
        " 'mschat.core.importers', 'mschat.cli.logs', 'mschat.cli.ops', 'mschat.cli.db',"
        " 'mschat.store.copy']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "", done.stdout


def db_rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    return sqlite3.connect(home / "mschat.db").execute(sql).fetchall()


def test_sigterm_keeps_what_arrived_as_interrupted(
    env: dict[str, str], mschat_home: Path, fake_thread: FakeOpenAIThread
):
    fake_thread.push(reply="word " * 400, delay=0.02)
    process = subprocess.Popen(
        mschat("ask", "Talk for a long time"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    received = b""
    deadline = time.monotonic() + 20
    while not received and time.monotonic() < deadline:
        if selector.select(timeout=1):
            received += os.read(process.stdout.fileno(), 4096)
    assert received, "no streamed output before the deadline"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 143, err
    assert err.decode().count("interrupted") == 1, err
    assert b"Traceback" not in err
    status, content = db_rows(
        mschat_home, "SELECT status, content FROM messages WHERE role = 'assistant'"
    )[0]
    assert status == "interrupted"
    assert isinstance(content, str) and (received + out).decode().startswith(content[:10])


def test_arguments_that_are_not_utf8_are_kept_with_replacement_characters(
    env: dict[str, str], mschat_home: Path
):
    done = subprocess.run(
        [*mschat("ask"), b"caf\xe9 \xff\xfe?"], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Echo: caf\ufffd \ufffd\ufffd?\n".encode()
    assert db_rows(mschat_home, "SELECT role, content FROM messages") == [
        ("user", "caf\ufffd \ufffd\ufffd?"),
        ("assistant", "Echo: caf\ufffd \ufffd\ufffd?"),
    ]
    for args in (
        [b"sessions", b"rename", b"1", b"\xffnotes"],
        [b"ask", b"-s", b"1", b"--system", b"\xfe", b"again"],
        [b"users", b"set", b"--system", b"\xff\xfe"],
        [b"sessions", b"search", b"\xff"],
    ):
        done = subprocess.run([*mschat(), *args], env=env, capture_output=True, timeout=30)
        assert done.returncode == 0, (args, done.stderr)
        assert b"Traceback" not in done.stderr
    assert db_rows(mschat_home, "SELECT title FROM sessions") == [("\ufffdnotes",)]
    assert db_rows(mschat_home, "SELECT system_msg FROM users WHERE kind = 'local'") == [
        ("\ufffd\ufffd",)
    ]


def test_piped_stdin_that_is_not_utf8_is_kept_with_replacement_characters(
    env: dict[str, str], mschat_home: Path
):
    done = subprocess.run(
        mschat("ask", "Summarise"), input=b"ab\xffcd\n", env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert db_rows(mschat_home, "SELECT content FROM messages WHERE role = 'user'") == [
        ("Summarise\n\nab\ufffdcd\n",)
    ]


def test_a_bad_session_title_in_bytes_leaves_no_session_behind(
    env: dict[str, str], mschat_home: Path
):
    done = subprocess.run(
        [*mschat("ask", "-s"), b"\xff\xfe", b"hello"], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and b"Traceback" not in done.stderr
    assert db_rows(mschat_home, "SELECT count(*) FROM sessions") == [(0,)]


def editor_script(tmp_path: Path, name: str, body: str) -> str:
    """An $EDITOR command: a Python script run on the file to edit."""
    script = tmp_path / f"{name}.py"
    script.write_text(f"import sys\nfrom pathlib import Path\npath = Path(sys.argv[1])\n{body}\n")
    return f"{sys.executable} {script}"


def test_ask_e_takes_the_prompt_from_the_editor(
    env: dict[str, str], mschat_home: Path, tmp_path: Path
):
    visual = editor_script(
        tmp_path, "visual", "path.write_text(path.read_text() + 'and from the editor')"
    )
    editor = editor_script(tmp_path, "editor", "path.write_text('the wrong editor')")
    done = subprocess.run(
        mschat("ask", "-e", "From the argument"),
        env={**env, "VISUAL": visual, "EDITOR": editor},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Echo: From the argument\nand from the editor\n"
    done = subprocess.run(
        mschat("ask", "-e"), env={**env, "EDITOR": editor}, capture_output=True, text=True
    )
    assert done.stdout == "Echo: the wrong editor\n"


def test_ask_e_with_an_empty_result_asks_nothing(
    env: dict[str, str], mschat_home: Path, tmp_path: Path
):
    empty = editor_script(tmp_path, "empty", "path.write_text('  \\n')")
    done = subprocess.run(
        mschat("ask", "-e", "A draft"),
        env={**env, "EDITOR": empty},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error:") and len(done.stderr.splitlines()) == 1
    assert not (mschat_home / "mschat.db").exists()


def test_shell_completion_scripts_and_answers(env: dict[str, str]):
    for shell in ("bash", "zsh", "fish"):
        done = subprocess.run(
            mschat(),
            env={**env, "_MSCHAT_COMPLETE": f"{shell}_source"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0 and "_MSCHAT_COMPLETE" in done.stdout, (shell, done)
    done = subprocess.run(
        mschat(),
        env={
            **env,
            "_MSCHAT_COMPLETE": "bash_complete",
            "COMP_WORDS": "mschat ses",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.split() == ["plain,sessions"]
    done = subprocess.run(
        mschat(),
        env={
            **env,
            "_MSCHAT_COMPLETE": "bash_complete",
            "COMP_WORDS": "mschat sessions ex",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.split() == ["plain,export"]


@pytest.mark.skipif(not HAVE_MODEL, reason="the 'local' extra is not installed")
@pytest.mark.local_model
def test_the_bundled_model_notice_is_shown_once_per_home(mschat_home: Path, tmp_path: Path):
    env = {**os.environ, "MSCHAT_HOME": str(mschat_home)}
    first = subprocess.run(
        mschat("ask", "--max-tokens", "4", "Say hello"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    assert "bundled offline model" in first.stderr and "OPENAI_API_KEY=" in first.stderr
    second = subprocess.run(
        mschat("ask", "--max-tokens", "4", "Say hello again"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert "bundled offline model" not in second.stderr
    other_home = tmp_path / "other"
    other_home.mkdir()
    third = subprocess.run(
        mschat("ask", "--max-tokens", "4", "Say hello"),
        env={**env, "MSCHAT_HOME": str(other_home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "bundled offline model" in third.stderr


def test_an_ask_waiting_for_another_process_says_so_once(
    env: dict[str, str], mschat_home: Path, fake_thread: FakeOpenAIThread
):
    assert subprocess.run(mschat("ask", "Start a session"), env=env, timeout=30).returncode == 0
    # public: other processes (the bot, the API) may answer in it too
    assert subprocess.run(mschat("sessions", "set", "1", "--public"), env=env).returncode == 0
    fake_thread.push(reply="word " * 200, delay=0.02)
    first = subprocess.Popen(
        mschat("ask", "-s", "1", "Talk for a while"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert first.stdout is not None
    assert first.stdout.read(5) == b"word "  # its turn has begun
    second = subprocess.run(
        mschat("ask", "-s", "1", "My turn?"), env=env, capture_output=True, text=True, timeout=60
    )
    first.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert second.stdout == "Echo: My turn?\n"
    waiting = [line for line in second.stderr.splitlines() if "waiting" in line]
    assert len(waiting) == 1 and "session 1" in waiting[0], second.stderr
