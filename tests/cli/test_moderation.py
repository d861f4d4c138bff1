"""Moderation through `mschat ask`: a flagged question is refused, a flagged answer withheld."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mschat.cli import cli
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAIThread


@pytest.fixture
def fake() -> Iterator[FakeOpenAIThread]:
    server = FakeOpenAIThread(chunk_size=3)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def home(mschat_home: Path, fake: FakeOpenAIThread) -> Path:
    write_config(
        mschat_home,
        f"""
[general]
default_model = "fake/fake-model"
[providers.fake]
base_url = "{fake.base_url}"
api_key = "sk-test"
models = ["fake-model"]
timeout = 2.0
max_retries = 0
[moderation]
model = "omni-moderation-latest"
""",
    )
    return mschat_home


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows(home: Path, sql: str) -> list[tuple]:
    return sqlite3.connect(home / "mschat.db").execute(sql).fetchall()


def test_a_flagged_question_is_refused_before_any_chat_call_and_kept(
    home: Path, fake: FakeOpenAIThread
):
    fake.flag("forbidden")
    result = run("ask", "Tell me something FORBIDDEN")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "Error: your question was flagged by moderation (harassment) and not answered"
    )
    assert fake.requests == []  # no chat request
    assert fake.moderations[0] == {
        "model": "omni-moderation-latest",
        "input": "Tell me something FORBIDDEN",
    }
    assert rows(home, "SELECT role, content, status, error FROM messages ORDER BY id") == [
        ("user", "Tell me something FORBIDDEN", "flagged", None),
        (
            "assistant",
            "",
            "flagged",
            "your question was flagged by moderation (harassment) and not answered",
        ),
    ]
    assert rows(home, "SELECT count(*) FROM api_calls") == [(0,)]

    # the next question in the session is answered, without the flagged one
    answered = run("ask", "-s", "1", "--json", "A fine question")
    assert answered.exit_code == 0, answered.output
    sent = [m["content"] for m in fake.requests[-1]["messages"]]
    assert sent == ["A fine question"]


def test_a_flagged_answer_is_withheld(home: Path, fake: FakeOpenAIThread):
    fake.reply = "Here is some gruesome violence for you."
    fake.flag("gruesome", category="violence")
    result = run("ask", "Tell me a story")
    assert result.exit_code == 1
    assert "gruesome" not in result.output
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == (
        "Error: the answer was withheld: moderation flagged it (violence)"
    )
    [question, answer] = [m["input"] for m in fake.moderations]
    assert (question, answer) == ("Tell me a story", "Here is some gruesome violence for you.")
    assert rows(home, "SELECT role, content, status FROM messages ORDER BY id") == [
        ("user", "Tell me a story", "complete"),
        ("assistant", "", "flagged"),
    ]
    # the answer was made (and billed): its request and tokens are recorded
    [(status, tokens)] = rows(home, "SELECT status, completion_tokens FROM api_calls")
    assert status == "ok" and tokens > 0

    shown = json.loads(run("ask", "--json", "Tell me another").stdout)
    assert shown["status"] == "flagged" and shown["reply"] == ""
    assert shown["error"] == "the answer was withheld: moderation flagged it (violence)"


def test_with_moderation_a_clean_answer_arrives_whole(home: Path, fake: FakeOpenAIThread):
    fake.flag("gruesome")
    result = run("ask", "Say hello")
    assert result.exit_code == 0
    assert result.stdout == "Echo: Say hello\n"
    assert [m["input"] for m in fake.moderations] == ["Say hello", "Echo: Say hello"]


def test_moderation_that_cannot_be_asked_refuses_to_pass_the_text_on(
    home: Path, fake: FakeOpenAIThread
):
    fake.moderation_fault = "503"
    result = run("ask", "Say hello")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: moderation could not check the text:")
    assert "Traceback" not in result.output
    assert fake.requests == []
    assert rows(home, "SELECT role, status FROM messages ORDER BY id") == [
        ("user", "complete"),
        ("assistant", "failed"),
    ]


def test_moderation_is_off_by_default(mschat_home: Path, fake: FakeOpenAIThread):
    write_config(
        mschat_home,
        f'[providers.fake]\nbase_url = "{fake.base_url}"\nmodels = ["fake-model"]\n',
    )
    fake.flag("hello")
    assert run("ask", "hello").stdout == "Echo: hello\n"
    assert fake.moderations == []
