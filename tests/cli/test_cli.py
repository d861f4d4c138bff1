"""The CLI through click's runner, against the loopback fake OpenAI server."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mschat import __version__
from mschat.cli import cli
from mschat.core.errors import InvalidInput
from mschat.core.manager import SessionManager
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAIThread


@pytest.fixture
def fake() -> Iterator[FakeOpenAIThread]:
    server = FakeOpenAIThread(chunk_size=3)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def configured(mschat_home: Path, fake: FakeOpenAIThread) -> Path:
    write_config(
        mschat_home,
        f"""
[general]
default_model = "fake/fake-model"
[providers.fake]
base_url = "{fake.base_url}"
api_key = "sk-test-secret-key-0000"
models = ["fake-model", "fake-large"]
timeout = 1.0
max_retries = 1
[aliases]
big = "fake/fake-large"
""",
    )
    return mschat_home


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def db_rows(home: Path, sql: str) -> list[tuple]:
    return sqlite3.connect(home / "mschat.db").execute(sql).fetchall()


def test_ask_streams_and_stores(configured: Path):
    result = run("ask", "Say hello")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Echo: Say hello\n"
    rows = db_rows(configured, "SELECT role, content, status FROM messages ORDER BY id")
    assert rows == [("user", "Say hello", "complete"), ("assistant", "Echo: Say hello", "complete")]


def test_ask_json_usage_and_no_stream(configured: Path):
    result = run("ask", "--json", "Hi there")
    data = json.loads(result.stdout)
    assert data["reply"] == "Echo: Hi there" and data["status"] == "complete"
    assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["completion_tokens"] > 0
    assert data["model"] == "fake/fake-model"
    result = run("ask", "--no-stream", "-u", "-m", "big", "Plain")
    assert result.exit_code == 0
    assert result.stdout == "Echo: Plain\n"
    assert "Token usage:" in result.stderr
    assert db_rows(configured, "SELECT model FROM sessions ORDER BY id DESC LIMIT 1") == [
        ("fake/fake-large",)
    ]


def test_continue_session_and_new(configured: Path):
    assert run("ask", "First question about sqlite").exit_code == 0
    assert run("ask", "-c", "Second").exit_code == 0
    assert run("ask", "-s", "First question about sqlite", "Third").exit_code == 0
    assert run("ask", "-s", "1", "Fourth").exit_code == 0
    assert run("ask", "--new", "Other topic").exit_code == 0
    rows = db_rows(configured, "SELECT session_id, count(*) FROM messages GROUP BY session_id")
    assert rows == [(1, 8), (2, 2)]
    assert db_rows(configured, "SELECT title FROM sessions WHERE id = 1") == [
        ("First question about sqlite",)
    ]


def test_stdin_is_appended_as_context(configured: Path):
    result = run("ask", "Summarise", input="line one\nline two\n")
    assert result.exit_code == 0
    stored = db_rows(configured, "SELECT content FROM messages WHERE role = 'user'")[0][0]
    assert stored == "Summarise\n\nline one\nline two\n"
    result = run("ask", input="only stdin")
    assert result.stdout == "Echo: only stdin\n"


def test_empty_prompt_is_an_error_and_stores_nothing(configured: Path):
    for args, stdin in ((["ask", "  "], ""), (["ask"], "")):
        result = run(*args, input=stdin)
        assert result.exit_code == 1
        assert "empty" in result.stderr
    assert not (configured / "mschat.db").exists() or db_rows(
        configured, "SELECT count(*) FROM messages"
    ) == [(0,)]


def test_unknown_session_and_model_say_how_to_list(configured: Path):
    result = run("ask", "-s", "99", "hi")
    assert result.exit_code == 1 and "mschat sessions list" in result.stderr
    result = run("ask", "-m", "nope/nothing", "hi")
    assert result.exit_code == 1 and "mschat models" in result.stderr
    result = run("ask", "-c", "hi")
    assert result.exit_code == 1 and "no session to continue" in result.stderr
    assert db_rows(configured, "SELECT count(*) FROM messages") == [(0,)]


def test_usage_error_exits_2(configured: Path):
    assert run("ask", "-c", "--new", "x").exit_code == 2
    assert run("sessions", "nope").exit_code == 2
    assert run("ask", "--temperature", "warm", "x").exit_code == 2


def test_bad_values_are_user_errors(configured: Path):
    result = run("ask", "--temperature", "7", "x")
    assert result.exit_code == 1 and "temperature" in result.stderr


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("401", "rejected"),
        ("429", "rate limited"),
        ("500", "500"),
        ("hang", "timed out"),
    ],
)
def test_provider_faults_end_in_a_clear_error_and_keep_the_question(
    configured: Path, fake: FakeOpenAIThread, fault: str, expected: str
):
    fake.inject(fault, times=None, retry_after_ms=10)
    result = run("ask", "Will this work?")
    assert result.exit_code == 1
    assert expected in result.stderr.lower()
    assert "sk-test-secret" not in result.stderr
    rows = db_rows(configured, "SELECT role, status, error FROM messages ORDER BY id")
    assert rows[0][:2] == ("user", "complete")
    assert rows[1][:2] == ("assistant", "failed") and expected in rows[1][2].lower()
    assert db_rows(configured, "SELECT count(*) FROM api_calls WHERE status = 'error'") == [(1,)]


def test_unreachable_provider_names_the_url(mschat_home: Path):
    write_config(
        mschat_home,
        '[general]\ndefault_model = "down/m"\n'
        '[providers.down]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
        "max_retries = 1\ntimeout = 1\n",
    )
    result = run("ask", "hello?")
    assert result.exit_code == 1
    assert "http://127.0.0.1:9/v1" in result.stderr
    assert db_rows(mschat_home, "SELECT status FROM messages WHERE role = 'assistant'") == [
        ("failed",)
    ]


def test_sessions_commands(configured: Path, tmp_path: Path):
    run("ask", "Tell me about zebras")
    run("ask", "-c", "And their stripes")
    run("ask", "Something about giraffes")
    listing = run("sessions", "list")
    assert listing.exit_code == 0
    assert "zebras" in listing.stdout and "giraffes" in listing.stdout
    data = json.loads(run("sessions", "list", "--json").stdout)
    assert [s["message_count"] for s in data] == [2, 4]
    shown = run("sessions", "show", "1")
    assert "Echo: And their stripes" in shown.stdout
    assert run("sessions", "rename", "1", "Zebra notes").exit_code == 0
    assert "Zebra notes" in run("sessions", "list").stdout
    assert run("sessions", "set", "1", "--public", "-m", "big").exit_code == 0
    assert json.loads(run("sessions", "show", "1", "--json").stdout)["session"]["public"] is True
    hits = run("sessions", "search", "stripes")
    assert hits.exit_code == 0 and "Zebra notes" in hits.stdout and "stripes" in hits.stdout
    assert "No matches" in run("sessions", "search", "unicorn").stdout
    out = tmp_path / "zebra.json"
    assert run("sessions", "export", "1", "-f", "json", "-o", str(out)).exit_code == 0
    assert len(json.loads(out.read_text())["messages"]) == 4
    markdown = run("sessions", "export", "Zebra notes").stdout
    assert markdown.startswith("# Zebra notes")
    assert run("sessions", "rm", "1", "-y").exit_code == 0
    assert "zebra" not in run("sessions", "list").stdout.lower()
    assert run("sessions", "show", "1").exit_code == 1


def test_users_commands(configured: Path):
    assert run("users", "list").exit_code == 0
    me = json.loads(run("users", "show", "--json").stdout)["user"]
    assert me["kind"] == "local" and me["admin"] is True
    result = run("users", "set", "--temperature", "0.2", "--max-tokens", "50", "--attach")
    assert result.exit_code == 0
    me = json.loads(run("users", "show", "--json").stdout)["user"]
    assert (me["temperature"], me["max_tokens"], me["attach"]) == (0.2, 50, True)
    assert run("users", "set", "--temperature", "9").exit_code == 1
    assert run("users", "set").exit_code == 2
    assert run("users", "show", "nobody").exit_code == 1


def test_models_config_and_version(configured: Path):
    models = run("models")
    assert "fake/fake-model *" in models.stdout and "big -> fake/fake-large" in models.stdout
    remote = json.loads(run("models", "--remote", "--json").stdout)
    assert {"fake/fake-model", "fake/fake-large"} <= {m["name"] for m in remote["models"]}
    assert run("config", "path").stdout.strip() == str(configured / "config.toml")
    assert run("config", "path", "--database").stdout.strip() == str(configured / "mschat.db")
    assert run("--db", "/tmp/x.db", "config", "path", "--database").stdout.strip() == "/tmp/x.db"
    assert run("--version").stdout.strip() == f"mschat, version {__version__}"


def test_config_show_prints_a_valid_config_file_with_secrets_masked(configured: Path):
    shown = run("config", "show")
    assert shown.exit_code == 0, shown.output
    assert "sk-test-secret-key-0000" not in shown.stdout and "****0000" in shown.stdout
    parsed = tomllib.loads(shown.stdout)
    assert parsed["general"]["default_model"] == "fake/fake-model"
    assert parsed["aliases"] == {"big": "fake/fake-large"}
    assert json.loads(run("config", "show", "--json").stdout)["providers"]["fake"]["key_set"]


def test_every_command_has_help_with_examples():
    commands = [
        ["ask"],
        ["sessions"],
        ["sessions", "list"],
        ["sessions", "show"],
        ["sessions", "rename"],
        ["sessions", "set"],
        ["sessions", "rm"],
        ["sessions", "search"],
        ["sessions", "export"],
        ["sessions", "import"],
        ["users"],
        ["users", "list"],
        ["users", "show"],
        ["users", "set"],
        ["models"],
        ["config"],
        ["tui"],
        ["serve-api"],
        ["serve-discord"],
        ["serve-admin"],
    ]
    for command in commands:
        result = run(*command, "--help")
        assert result.exit_code == 0, command
        assert "mschat" in result.stdout and "Example" in result.stdout, command
        assert run(*command, "-h").stdout == result.stdout, command
    assert run("-h").stdout == run("--help").stdout


def test_bad_config_is_a_one_line_error(mschat_home: Path):
    write_config(mschat_home, "[general]\nshoe_size = 9\n")
    result = run("ask", "hi")
    assert result.exit_code == 1
    assert "unknown key general.shoe_size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_then_import_round_trip(configured: Path, tmp_path: Path):
    run("ask", "Remember the zebra")
    run("ask", "-c", "And the giraffe")
    out = tmp_path / "s.json"
    assert run("sessions", "export", "1", "-f", "json", "-o", str(out)).exit_code == 0
    other = tmp_path / "other.db"
    result = run("--db", str(other), "sessions", "import", str(out))
    assert result.exit_code == 0, result.output
    assert "4 messages" in result.stdout
    shown = json.loads(run("--db", str(other), "sessions", "show", "1", "--json").stdout)
    original = json.loads(out.read_text())
    assert [m["content"] for m in shown["messages"]] == [m["content"] for m in original["messages"]]
    assert [m["created"] for m in shown["messages"]] == [m["created"] for m in original["messages"]]
    again = run("--db", str(other), "sessions", "import", str(out))
    assert again.exit_code == 0 and again.stdout.startswith("Nothing new in"), again.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    result = run("sessions", "import", str(bad))
    assert result.exit_code == 1 and str(bad) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _chatgpt_conversation(title: str, question: str, answer: str) -> dict[str, object]:
    def node(id_: str, role: str, text: str, parent: str | None, child: str | None):
        message = {
            "id": id_,
            "author": {"role": role},
            "create_time": 1700000000.0,
            "content": {"content_type": "text", "parts": [text]},
        }
        return {
            "id": id_,
            "message": message,
            "parent": parent,
            "children": [child] if child else [],
        }

    return {
        "title": title,
        "create_time": 1700000000.0,
        "update_time": 1700000001.0,
        "current_node": "a",
        "mapping": {
            "q": node("q", "user", question, None, "a"),
            "a": node("a", "assistant", answer, "q", None),
        },
    }


def test_import_prints_one_line_per_imported_session(configured: Path, tmp_path: Path):
    export = tmp_path / "conversations.json"
    export.write_text(
        json.dumps(
            [
                _chatgpt_conversation("Zebra facts", "Stripes?", "Yes, stripes."),
                _chatgpt_conversation("Giraffe facts", "Necks?", "Long ones."),
            ]
        )
    )
    result = run("sessions", "import", str(export))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, lines
    assert all(str(export) in line and "2 messages" in line for line in lines), lines
    assert {"Zebra facts", "Giraffe facts"} == {
        s["title"] for s in json.loads(run("sessions", "list", "--json").stdout)
    }


def test_admin_sets_rate_limit_of_another_user(configured: Path):
    assert run("users", "list").exit_code == 0
    result = run("users", "set", "--rate-limit", "0")
    assert result.exit_code == 0
    result = run("ask", "hello")
    assert result.exit_code == 1 and "rate limit reached" in result.stderr
    assert run("users", "set", "--not-ignored").exit_code == 0


def test_servers_hand_the_core_an_aiohttp_transport(configured: Path):
    from mschat.aiohttp_transport import AiohttpTransport
    from mschat.cli import Context

    for server, expected in ((True, AiohttpTransport), (False, type(None))):
        services = Context(None).services(server=server)
        try:
            provider = services.registry.provider("fake")
            assert type(provider._async_transport) is expected
        finally:
            services.store.close()


EVERY_COMMAND = [
    ["ask", "hi"],
    ["sessions", "list"],
    ["sessions", "show", "1"],
    ["sessions", "rename", "1", "x"],
    ["sessions", "set", "1", "--public"],
    ["sessions", "rm", "1", "-y"],
    ["sessions", "search", "x"],
    ["sessions", "export", "1"],
    ["users", "list"],
    ["users", "show"],
    ["users", "set", "--temperature", "0.5"],
    ["models"],
    ["config", "show"],
    ["tui"],
    ["serve-api"],
    ["serve-discord"],
    ["serve-admin"],
]


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_a_bad_config_or_database_is_one_line_on_every_command(
    mschat_home: Path, tmp_path: Path, command: list[str]
):
    write_config(mschat_home, "[general]\ntimeout = 'soon'\n")
    result = run(*command)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error:") and len(result.stderr.splitlines()) == 1
    write_config(mschat_home, "")
    if command[0] == "config":
        return  # reads no database
    directory = tmp_path / "a-directory.db"
    directory.mkdir()
    result = run("--db", str(directory), *command)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error:") and len(result.stderr.splitlines()) == 1
    assert str(directory) in result.stderr


def test_usage_errors_are_one_line_and_exit_2(configured: Path):
    for args in (["ask", "--nope"], ["sessions", "nope"], ["ask", "--temperature", "warm"]):
        result = run(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("Error:") and len(result.stderr.splitlines()) == 1
        assert "-h" in result.stderr


def test_an_error_of_several_lines_is_shown_as_one(
    configured: Path, monkeypatch: pytest.MonkeyPatch
):
    async def ambiguous(self: SessionManager, user: object, ref: str) -> object:
        raise InvalidInput(f"{ref!r} matches sessions:\n 3 Twin\n 5 Twin")

    monkeypatch.setattr(SessionManager, "find_session", ambiguous)
    result = run("sessions", "rm", "Twin", "-y")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["Error: 'Twin' matches sessions:␤ 3 Twin␤ 5 Twin"]


def test_a_title_several_sessions_share_is_one_line_naming_them(configured: Path):
    assert run("ask", "First zebra").exit_code == 0
    assert run("ask", "Second zebra").exit_code == 0
    assert run("sessions", "rename", "1", "Twin").exit_code == 0
    assert run("sessions", "rename", "2", "Twin").exit_code == 0
    result = run("sessions", "show", "Twin")
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert "1" in result.stderr and "2" in result.stderr


def test_unknown_environment_variables_are_warned_about_once(
    configured: Path, monkeypatch: pytest.MonkeyPatch
):
    # in two parts: tests/test_config.py requires every MSCHAT_* name in the code to be known
    misspelt = "MSCHAT_GENERAL_DEFAULT_" + "MODLE"
    monkeypatch.setenv(misspelt, "fake/fake-large")
    result = run("ask", "hi")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if misspelt in line]
    assert len(warnings) == 1 and "MSCHAT_GENERAL_DEFAULT_MODEL" in warnings[0]
    shown = run("config", "show", "--json")
    assert misspelt in shown.stderr
