"""``mschat db status|upgrade|copy`` and the servers' refusal of an outdated schema."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mschat.cli import cli
from mschat.store import inspect_schema, open_store
from mschat.store.contract import TABLES
from mschat.store.sqlite.migrations import KNOWN_MIGRATIONS
from tests.cli.terminal import Terminal, mschat
from tests.conftest import MakeDatabase, fake_model_config
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.histories import everything, fill_history, newer_database, older_database

PASSWORD = "hunter2-secret"
PENDING = KNOWN_MIGRATIONS[4:]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error:") and len(result.stderr.splitlines()) == 1
    return result.stderr


def with_password(where: str) -> str:
    """A PostgreSQL URL with a password (the test cluster trusts its user: it is ignored)."""
    return where.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def filled(make_database: MakeDatabase, backend: str, name: str = "source") -> str:
    where = make_database(backend, name, migrated=True)
    store = open_store(where)
    fill_history(store)
    store.close()
    return where


def test_every_db_command_has_help_with_examples():
    for command in (["db"], ["db", "status"], ["db", "upgrade"], ["db", "copy"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.stdout, command


# ---- status ---------------------------------------------------------------------


@pytest.mark.backends
def test_status_shows_the_backend_schema_migrations_and_rows(backend: str, db_url: str):
    where = with_password(db_url)
    store = open_store(where)
    fill_history(store)
    shown = store.url
    store.close()
    result = run("--db", where, "db", "status")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["backend", backend]
    assert lines[1].split() == ["database", shown]
    assert lines[2] == f"schema      {len(KNOWN_MIGRATIONS)}, current"
    assert lines[3].split() == ["applied", *KNOWN_MIGRATIONS]
    assert "messages          7" in lines and "idempotency_keys  1" in lines
    data = json.loads(run("--db", where, "db", "status", "--json").stdout)
    assert (data["backend"], data["state"], data["schema_version"]) == (
        backend,
        "current",
        len(KNOWN_MIGRATIONS),
    )
    assert data["url"] == shown and data["applied"] == KNOWN_MIGRATIONS
    assert data["counts"] == {"users": 2, "sessions": 2, "messages": 7, "api_calls": 3} | {
        "feedback": 1,
        "interactions": 1,
        "idempotency_keys": 1,
        "attachments": 0,
        "tool_calls": 0,
        "tool_grants": 0,
    }


@pytest.mark.backends
def test_status_of_a_blank_an_outdated_and_a_newer_database(
    backend: str, make_database: MakeDatabase
):
    blank = make_database(backend, "blank")
    result = run("--db", blank, "db", "status")
    assert result.exit_code == 0 and "schema      none yet (blank" in result.stdout
    assert backend == "postgresql" or not Path(blank).exists()  # status creates nothing
    older = make_database(backend, "older")
    older_database(older, keep=4)
    result = run("--db", older, "db", "status")
    assert (
        f"schema      4 of {len(KNOWN_MIGRATIONS)}, outdated: {len(PENDING)} migrations pending"
        in result.stdout
    )
    assert result.stdout.splitlines()[4].split() == ["pending", *PENDING]
    data = json.loads(run("--db", older, "db", "status", "--json").stdout)
    assert (data["state"], data["pending"]) == ("outdated", PENDING)
    newer = make_database(backend, "newer", migrated=True)
    newer_database(open_store(newer))
    result = run("--db", newer, "db", "status")
    assert "newer: written by a newer mschat (m999_from_the_future)" in result.stdout


# ---- upgrade --------------------------------------------------------------------


@pytest.mark.backends
def test_upgrade_applies_the_pending_migrations_and_names_them(
    backend: str, make_database: MakeDatabase
):
    where = make_database(backend)
    older_database(where, keep=4)
    result = run("--db", where, "db", "upgrade")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[: len(PENDING)] == [f"Applied {name}" for name in PENDING]
    assert lines[len(PENDING)].endswith(f": upgraded (schema {len(KNOWN_MIGRATIONS)})")
    assert inspect_schema(where).state == "current"
    again = run("--db", where, "db", "upgrade")
    assert again.stdout.endswith(
        f"already current (schema {len(KNOWN_MIGRATIONS)}); no migration to apply\n"
    )
    newer_database(open_store(where))
    assert "newer mschat" in one_line_error(run("--db", where, "db", "upgrade"))


# ---- the servers ----------------------------------------------------------------

SERVERS = {
    "serve-api": "mschat.api.server",
    "serve-discord": "mschat.discord.bot",
    "tui": "mschat.tui.app",
    "serve-admin": "mschat.admin_web.server",
}


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The servers' run functions record the services they got instead of serving."""
    got: list[Any] = []
    for module in SERVERS.values():
        # serve-admin's run gets only keywords (it opens no services of its own)
        monkeypatch.setattr(f"{module}.run", lambda *args, **kwargs: got.append(args or kwargs))
    return got


@pytest.mark.backends
@pytest.mark.parametrize("command", SERVERS)
def test_servers_refuse_an_outdated_schema_unless_upgrade(
    backend: str, make_database: MakeDatabase, command: str, started: list[Any]
):
    where = make_database(backend)
    older_database(where, keep=4)
    before = inspect_schema(where)
    error = one_line_error(run("--db", where, command))
    assert f"older schema ({len(PENDING)} migrations pending: m005_idempotency_keys" in error
    assert f"run `mschat db upgrade` or start it with `mschat {command} --upgrade`" in error
    assert inspect_schema(where) == before and not started
    result = run("--db", where, command, "--upgrade")
    assert result.exit_code == 0, result.output
    assert len(started) == 1 and inspect_schema(where).state == "current"


@pytest.mark.backends
def test_a_server_creates_a_blank_database(
    backend: str, make_database: MakeDatabase, started: list[Any]
):
    where = make_database(backend)
    assert run("--db", where, "serve-api").exit_code == 0
    assert inspect_schema(where).state == "current" and len(started) == 1


@pytest.mark.backends
def test_one_shot_commands_upgrade_an_outdated_schema(
    backend: str, make_database: MakeDatabase, mschat_home: Path, fake_thread: FakeOpenAIThread
):
    fake_model_config(mschat_home, fake_thread.base_url)
    for command in (["sessions", "list"], ["ask", "hello"]):
        where = make_database(backend, command[0])
        older_database(where, keep=4)
        result = run("--db", where, *command)
        assert result.exit_code == 0, result.output
        assert inspect_schema(where).state == "current"


# ---- copy -----------------------------------------------------------------------


def checksums(output: str) -> dict[str, str]:
    """The checksum column of a copy's table, by table."""
    found = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] in (*TABLES, "settings"):
            found[cells[0]] = cells[-1]
    return found


def test_copy_sqlite_to_postgresql_and_back_then_again(make_database: MakeDatabase):
    source = filled(make_database, "sqlite")
    middle = with_password(make_database("postgresql"))  # blank: created by the copy
    back = make_database("sqlite", "back")
    untouched = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    there = run("db", "copy", source, middle)
    assert there.exit_code == 0, there.output
    assert PASSWORD not in there.output
    lines = there.stdout.splitlines()
    assert lines[0].startswith(f"Copying {source} (sqlite) to postgresql://postgres@")
    assert lines[1].split() == [
        "table",
        "SRC",
        "rows",
        "DST",
        "rows",
        "inserted",
        "updated",
        "checksum",
        "(sha256)",
    ]
    assert lines[4].split()[:5] == ["messages", "7", "7", "7", "0"]
    assert lines[-1].startswith("Copied in ") and lines[-1].endswith(
        "verified: every table has the same rows and checksum on both sides."
    )
    assert there.stderr == ""  # no progress off a terminal
    again = run("db", "copy", source, middle)
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1] == (
        "Nothing to copy: DST already holds every row of SRC; nothing was changed."
    )
    assert hashlib.sha256(Path(source).read_bytes()).hexdigest() == untouched  # only read
    returned = run("db", "copy", middle, back)
    assert returned.exit_code == 0, returned.output
    assert checksums(there.stdout) == checksums(again.stdout) == checksums(returned.stdout)
    first, last = open_store(source), open_store(back)
    assert everything(first) == everything(last)
    first.close()
    last.close()


@pytest.mark.parametrize("backends", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_copy_refuses_a_destination_with_rows_of_its_own_unless_told(
    make_database: MakeDatabase, backends: tuple[str, str]
):
    source = filled(make_database, backends[0])
    dest = make_database(backends[1], "dest", migrated=True)
    store = open_store(dest)
    store.advance_ids("users", 100)
    store.create_user(kind="local", external_id="carol", name="Carol", status="active")
    store.close()
    error = one_line_error(run("db", "copy", source, dest))
    assert "not empty: it holds 1 rows the source has not (first: users 101)" in error
    assert "--into-nonempty" in error
    result = run("db", "copy", "--into-nonempty", source, dest)
    assert result.exit_code == 0, result.output
    assert "DST also holds rows of its own, kept: users 1." in result.stdout


def test_copy_refuses_what_it_cannot_copy_from_or_into(make_database: MakeDatabase):
    missing = make_database("sqlite", "missing")
    source = filled(make_database, "sqlite")
    error = one_line_error(run("db", "copy", missing, source))
    assert "holds no mschat database" in error and not Path(missing).exists()
    older = make_database("postgresql", "older")
    older_database(older, keep=4)
    assert "has an older schema: upgrade it first (mschat --db DST db upgrade)" in one_line_error(
        run("db", "copy", source, older)
    )
    newer = make_database("sqlite", "newer")
    newer_database(open_store(newer))
    assert "newer mschat" in one_line_error(run("db", "copy", source, newer))
    assert "same database" in one_line_error(run("db", "copy", source, source))


@pytest.mark.parametrize("backends", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_copy_moves_live_settings_and_refuses_a_source_in_use_unless_forced(
    make_database: MakeDatabase, backends: tuple[str, str]
):
    source = filled(make_database, backends[0])
    dest = make_database(backends[1], "dest")
    store = open_store(source)
    user = store.create_user(kind="api", external_id="x", name="x", status="active")
    store.enqueue(
        user.id, "fake", 0, "2026-01-01T00:00:00+00:00", "2999-01-01T00:00:00+00:00", None
    )
    store.close()
    error = one_line_error(run("db", "copy", source, dest))
    assert "the source is in use: 1 question(s) in its queue" in error
    assert "mschat --db SRC ops pause" in error and "--force" in error
    store = open_store(dest)
    assert store.count_rows("users") == 0 and store.settings() == []  # nothing was written
    store.close()
    result = run("db", "copy", "--force", source, dest)
    assert result.exit_code == 0, result.output
    sums = checksums(result.stdout)
    assert set(sums) == {*TABLES, "settings"} and "≠" not in result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.startswith("settings")]
    assert line.split()[1:5] == ["2", "2", "2", "0"]
    live = run("--db", dest, "config", "show", "--live", "--json")
    assert live.exit_code == 0, live.output
    assert "queue.size" in live.stdout and "50" in live.stdout


def test_copy_prints_a_json_report_with_whole_checksums(make_database: MakeDatabase):
    source = filled(make_database, "postgresql")
    result = run("db", "copy", "--json", source, make_database("sqlite", "dest"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verified"] and data["changed"] and not data["resumed"]
    messages = data["tables"]["messages"]
    assert (messages["source_rows"], messages["inserted"]) == (7, 7)
    assert re.fullmatch("[0-9a-f]{64}", messages["source_checksum"])
    assert messages["dest_checksum"] == messages["source_checksum"]


def test_an_interrupted_copy_says_how_to_resume_and_resumes(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
):
    from mschat.store.copy import _Writer

    source = filled(make_database, "sqlite")
    dest = make_database("postgresql", "dest")
    write = _Writer.write

    def interrupted(self: _Writer, table: str, new: list[Any], changed: list[Any]) -> None:
        if table == "messages":
            raise KeyboardInterrupt
        write(self, table, new, changed)

    monkeypatch.setattr(_Writer, "write", interrupted)
    result = run("db", "copy", "--batch-size", "2", source, dest)
    assert result.exit_code == 130
    assert result.stderr == (
        "Interrupted: the destination keeps the batches copied so far; "
        "run the same command again to resume.\n"
    )
    assert inspect_schema(dest).counts["sessions"] == 2
    monkeypatch.setattr(_Writer, "write", write)
    result = run("db", "copy", "--batch-size", "2", source, dest)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("Resumed an earlier copy, copied the rest in")


def test_a_source_written_during_the_copy_fails_verification(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
):
    from mschat.store.copy import _Copier

    source = filled(make_database, "sqlite")
    advance = _Copier.advance_ids

    def meanwhile(self: _Copier) -> list[str]:
        self.source.add_message(session_id=1, role="user", content="written meanwhile")
        return advance(self)

    monkeypatch.setattr(_Copier, "advance_ids", meanwhile)
    result = run("db", "copy", source, make_database("postgresql", "dest"))
    assert "SRC " in result.stdout and " ≠ DST " in result.stdout
    error = one_line_error(result)
    assert "verification failed: sessions, messages differ" in error and "run it again" in error


def test_progress_shows_on_a_terminal_only(make_database: MakeDatabase, mschat_home: Path):
    source = filled(make_database, "sqlite")
    dest = make_database("sqlite", "dest")
    terminal = Terminal(
        mschat("db", "copy", "--batch-size", "1", source, dest),
        {**os.environ, "MSCHAT_HOME": str(mschat_home)},
    )
    code, received = terminal.finish()
    assert code == 0, received
    text = received.decode()
    assert "\r\x1b[2Kcopying messages: 7 of 7 (100%)" in text
    assert "\r\x1b[2Kverifying messages: 7 of 7 (100%)" in text
    assert "verified: every table has the same rows" in text
