"""The installed CLI as a real process: streaming, piping, Ctrl-C."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAIThread


@pytest.fixture
def fake() -> Iterator[FakeOpenAIThread]:
    server = FakeOpenAIThread(chunk_size=5)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(mschat_home: Path, fake: FakeOpenAIThread) -> dict[str, str]:
    write_config(
        mschat_home,
        f'[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{fake.base_url}"\nmodels = ["fake-model"]\n',
    )
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
    assert "Count lines" in listed.stdout


def test_ctrl_c_keeps_what_arrived_as_interrupted(
    env: dict[str, str], mschat_home: Path, fake: FakeOpenAIThread
):
    fake.push(reply="word " * 400, delay=0.02)
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
    and none of the other command groups' modules.

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
        " 'numpy', 'mschat.tui', 'mschat.api', 'mschat.discord', 'mschat.cli.sessions',"
        " 'mschat.cli.users', 'mschat.cli.models', 'mschat.cli.config', 'mschat.cli.launchers']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "", done.stdout
