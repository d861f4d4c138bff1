"""Where the database is: a path, sqlite:///PATH, postgresql://…, or one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.errors import ConfigError
from mschat.store import open_store
from mschat.store.location import parse, shown
from tests.conftest import write_config

SECRET = "hunter2-secret"


def mschat(cwd: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run mschat in ``cwd`` (a folder of its own: nothing may appear in it)."""
    cwd = cwd / "cwd"
    cwd.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "mschat", *args],
        cwd=cwd,
        env={**os.environ, "MSCHAT_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_paths_and_urls_pick_their_backend(tmp_path: Path):
    assert parse("mschat.db").backend == "sqlite"
    assert parse(tmp_path / "x.db").target == str(tmp_path / "x.db")
    assert parse("sqlite:///var/lib/mschat/x.db").target == "/var/lib/mschat/x.db"
    assert parse("sqlite://localhost/tmp/a%20b.db").target == "/tmp/a b.db"
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "POSTGRESQL://u@h/db"):
        assert parse(url).backend == "postgresql"
    assert SECRET not in repr(parse(f"postgresql://u:{SECRET}@h/db"))
    assert shown(f"postgresql://u:{SECRET}@h/db") == "postgresql://****@h/db"


@pytest.mark.parametrize(
    "url", [f"mysql://root:{SECRET}@db/chat", "http://example.org/x.db", "sqlite://host/x.db"]
)
def test_an_unsupported_url_is_one_line_without_its_password(url: str):
    with pytest.raises(ConfigError) as error:
        open_store(url)
    message = str(error.value)
    assert "\n" not in message and SECRET not in message
    assert "sqlite:///PATH" in message


def test_a_sqlite_url_opens_that_file(tmp_path: Path):
    store = open_store(f"sqlite://{tmp_path}/via-url.db")
    store.close()
    assert (tmp_path / "via-url.db").exists()


@pytest.mark.timeout(60)
def test_db_postgresql_no_longer_makes_a_sqlite_file(tmp_path: Path, mschat_home: Path):
    """It used to create ./postgresql:/… as a SQLite database, silently."""
    url = f"postgresql://mschat:{SECRET}@127.0.0.1:1/mschat"  # nothing listens on port 1
    for run in (
        mschat(tmp_path, mschat_home, "--db", url, "sessions", "list"),
        mschat(tmp_path, mschat_home, "sessions", "list", MSCHAT_DB=url),
    ):
        assert run.returncode == 1
        (line,) = run.stderr.strip().splitlines()  # one line, no traceback
        assert "cannot connect to database" in line and SECRET not in line
        assert "127.0.0.1:1" in line or "127.0.0.1" in line
    assert list((tmp_path / "cwd").iterdir()) == []
    assert not (mschat_home / "mschat.db").exists()


@pytest.mark.timeout(60)
def test_an_unknown_scheme_on_the_command_line_is_one_line(tmp_path: Path, mschat_home: Path):
    run = mschat(
        tmp_path, mschat_home, "--db", f"mysql://root:{SECRET}@db/chat", "sessions", "list"
    )
    assert run.returncode != 0
    (line,) = run.stderr.strip().splitlines()
    assert "unsupported database URL scheme 'mysql'" in line and SECRET not in line
    assert list((tmp_path / "cwd").iterdir()) == []


def test_database_url_in_the_config_file_and_its_overrides(mschat_home: Path):
    write_config(mschat_home, f'[database]\nurl = "postgresql://me:{SECRET}@db.example/chat"\n')
    config = load_config()
    assert config.db == f"postgresql://me:{SECRET}@db.example/chat"
    assert SECRET not in repr(config) and SECRET not in config.db_shown
    assert SECRET not in config.masked_toml() and "postgresql://****@db.example/chat" in (
        config.masked_toml()
    )
    assert load_config({**os.environ, "MSCHAT_DB": "~/other.db"}).db == str(
        Path("~/other.db").expanduser()
    )
    assert load_config(db="sqlite:///x.db").db == "sqlite:///x.db"
    env = {**os.environ, "MSCHAT_DATABASE_URL": "postgresql://env@h/db"}
    assert load_config(env).db == "postgresql://env@h/db"


@pytest.mark.timeout(60)
def test_config_show_and_path_mask_the_password(tmp_path: Path, mschat_home: Path):
    url = f"postgresql://me:{SECRET}@db.example/chat"
    shown_toml = mschat(tmp_path, mschat_home, "config", "show", MSCHAT_DB=url)
    assert shown_toml.returncode == 0, shown_toml.stderr
    assert SECRET not in shown_toml.stdout and "postgresql://****@db.example/chat" in (
        shown_toml.stdout
    )
    as_json = mschat(tmp_path, mschat_home, "config", "show", "--json", MSCHAT_DB=url)
    assert SECRET not in as_json.stdout
    assert json.loads(as_json.stdout)["database"] == {"url": "postgresql://****@db.example/chat"}
    path = mschat(tmp_path, mschat_home, "config", "path", "--database", MSCHAT_DB=url)
    assert path.stdout.strip() == "postgresql://****@db.example/chat"


@pytest.mark.timeout(60)
def test_mschat_on_postgresql_end_to_end(
    tmp_path: Path, mschat_home: Path, pg_url: str, fake_thread: object
):
    from tests.conftest import fake_model_config

    fake_model_config(mschat_home, fake_thread.base_url)  # type: ignore[attr-defined]
    asked = mschat(tmp_path, mschat_home, "--db", pg_url, "ask", "hello postgres")
    assert asked.returncode == 0, asked.stderr
    listed = mschat(tmp_path, mschat_home, "sessions", "list", MSCHAT_DB=pg_url)
    assert "hello postgres" in listed.stdout
    found = mschat(tmp_path, mschat_home, "sessions", "search", "postgres", MSCHAT_DB=pg_url)
    assert "hello postgres" in found.stdout
    assert not (mschat_home / "mschat.db").exists()
