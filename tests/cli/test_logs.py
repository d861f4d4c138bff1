"""``mschat logs interactions|api-calls|feedback`` on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result

from mschat.cli import cli
from mschat.store import open_store

pytestmark = pytest.mark.backends


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat(timespec="microseconds")


@pytest.fixture
def logged(db_url: str) -> str:
    """A database with interactions, API calls and feedback of two users."""
    store = open_store(db_url)
    alice = store.create_user(kind="discord", external_id="1", name="alice", status="new").id
    bob = store.create_user(kind="discord", external_id="2", name="bob", status="new").id
    session = store.create_session(creator_id=alice, title="t", origin="discord")
    reply = store.add_message(session_id=session.id, role="assistant", content="a").id
    store.add_interaction(
        user_id=alice,
        source="discord",
        kind="slash_command",
        name="user",
        payload={"name": "user"},
        status="ok",
        created=ago(days=3),
    )
    store.add_interaction(
        user_id=bob,
        source="discord",
        kind="component",
        name="feedback:good",
        payload={"custom_id": "\x1b[31mred"},
        status="refused",
        error="Feedback is off",
        created=ago(minutes=5),
    )
    store.add_api_call(
        user_id=alice,
        session_id=session.id,
        message_id=reply,
        provider="fake",
        model="fake-model",
        status="ok",
        http_status=200,
        latency_ms=120,
        prompt_tokens=7,
        completion_tokens=11,
        started=ago(hours=1),
    )
    store.add_feedback(message_id=reply, user_id=bob, kind="other", text="cite \x1b[2J it")
    store.close()
    return db_url


def test_interactions_newest_first_with_filters(logged: str):
    result = run("--db", logged, "logs", "interactions")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "TIME",
        "USER",
        "SOURCE",
        "KIND",
        "NAME",
        "STATUS",
        "ERROR",
        "TEXT",
    ]
    assert "bob" in lines[1] and "feedback:good" in lines[1] and "Feedback is off" in lines[1]
    assert "alice" in lines[2] and len(lines) == 3
    recent = run("--db", logged, "logs", "interactions", "--since", "1h").stdout.splitlines()
    assert len(recent) == 2 and "bob" in recent[1]
    assert len(run("--db", logged, "logs", "interactions", "--limit", "1").stdout.splitlines()) == 2
    mine = run("--db", logged, "logs", "interactions", "--user", "alice").stdout.splitlines()
    assert len(mine) == 2 and "slash_command" in mine[1]
    rows = json.loads(run("--db", logged, "logs", "interactions", "--json").stdout)
    assert [r["user_name"] for r in rows] == ["bob", "alice"]
    assert rows[0]["payload"] == {"custom_id": "\x1b[31mred"}  # the payload as JSON, escaped


def test_api_calls_and_feedback(logged: str):
    result = run("--db", logged, "logs", "api-calls")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split()[:6] == ["ID", "STARTED", "USER", "MODEL", "STATUS", "HTTP"]
    assert row.split()[3:9] == ["alice", "fake/fake-model", "ok", "200", "120", "ms"]
    assert "7/11" in row
    [call] = json.loads(run("--db", logged, "logs", "api-calls", "--json").stdout)
    assert call["prompt_tokens"] == 7 and call["latency_ms"] == 120
    feedback = run("--db", logged, "logs", "feedback").stdout
    assert "cite ␛[2J it" in feedback and "\x1b" not in feedback and "bob" in feedback
    assert run("--db", logged, "logs", "feedback", "--since", "2099-01-01").stdout.count("\n") == 1


def test_kind_filters_interactions_and_feedback(logged: str):
    rows = json.loads(
        run("--db", logged, "logs", "interactions", "--kind", "component", "--json").stdout
    )
    assert [(r["user_name"], r["kind"]) for r in rows] == [("bob", "component")]
    shown = run("--db", logged, "logs", "feedback", "--kind", "good").stdout.splitlines()
    assert len(shown) == 1  # the header: bob's feedback is "other"
    result = run("--db", logged, "logs", "api-calls", "--kind", "ok")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "--kind" in result.stderr and "only interactions and feedback" in result.stderr


def test_bad_input_is_one_line(logged: str):
    for args, wanted in (
        (["--since", "yesterday"], "--since"),
        (["--limit", "0"], "--limit"),
        (["--user", "nobody"], "no user 'nobody'"),
    ):
        result = run("--db", logged, "logs", "interactions", *args)
        assert result.exit_code in (1, 2) and result.stderr.startswith("Error:"), result.output
        assert len(result.stderr.splitlines()) == 1 and wanted in result.stderr
    result = run("--db", logged, "logs", "sessions")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "Example" in run("logs", "--help").stdout
