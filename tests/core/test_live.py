"""Live settings: ``mschat config set`` (a real process) reaches a running instance within 1 s.

The instance here is a second manager on the same database, watching as a
server does (``services.live.start()``); both backends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.errors import ConfigError
from mschat.core.live import LIVE_KEYS, parse_value
from mschat.core.services import Services, build_services
from tests.conftest import eventually, write_config

#: how soon every running instance applies a change
APPLIED_WITHIN = 1.0


async def mschat(db_url: str, *args: str) -> tuple[int, str]:
    """Run ``mschat --db URL ARGS`` as a process: its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mschat",
        "--db",
        db_url,
        *args,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


@pytest.fixture
async def running(mschat_home: Path, db_url: str) -> AsyncIterator[Services]:
    """A running instance whose config.toml sets a rate limit of 3 for new users."""
    write_config(mschat_home, "[defaults]\nrate_limit = 3\n")
    services = build_services(load_config(db=db_url))
    services.live.start()
    yield services
    await services.aclose()


async def test_config_set_and_unset_reach_a_running_instance(
    running: Services, db_url: str
) -> None:
    manager = running.manager
    assert running.live.get("defaults.rate_limit") == 3
    code, output = await mschat(db_url, "config", "set", "defaults.rate_limit", "5")
    assert code == 0 and "defaults.rate_limit = 5" in output
    await eventually(lambda: manager.defaults["rate_limit"] == 5, APPLIED_WITHIN)
    assert (await manager.user("api", "newcomer")).rate_limit == 5
    assert running.config.get("defaults", "rate_limit") == 5
    assert running.live.stored()["defaults.rate_limit"].updated_by == "tester"

    code, _ = await mschat(db_url, "config", "set", "discord.default_status", "active")
    assert code == 0
    await eventually(lambda: manager.defaults["discord_status"] == "active", APPLIED_WITHIN)
    assert (await manager.user("discord", "77")).status == "active"

    code, output = await mschat(db_url, "config", "unset", "defaults.rate_limit")
    assert code == 0 and "unset" in output
    await eventually(lambda: manager.defaults["rate_limit"] == 3, APPLIED_WITHIN)
    assert (await manager.user("api", "later")).rate_limit == 3


async def test_a_value_set_before_start_applies_at_start(mschat_home: Path, db_url: str) -> None:
    code, _ = await mschat(db_url, "config", "set", "defaults.one_question_at_a_time", "on")
    assert code == 0
    services = build_services(load_config(db=db_url))
    try:
        assert services.manager.defaults["one_question_at_a_time"] is True
        assert services.live.stored()["defaults.one_question_at_a_time"].value == "true"
    finally:
        await services.aclose()


async def test_a_bad_stored_value_is_ignored(
    running: Services, caplog: pytest.LogCaptureFixture
) -> None:
    running.store.set_setting("defaults.rate_limit", '"lots"', "psql")
    with caplog.at_level(logging.WARNING, "mschat"):
        running.live.refresh()
    assert running.live.get("defaults.rate_limit") == 3
    assert "defaults.rate_limit must be a positive integer" in caplog.text


async def test_sighup_reload_keeps_the_database_values_and_survives_a_bad_file(
    running: Services, mschat_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running.live.set("discord.default_status", "new", "tester")
    write_config(
        mschat_home,
        '[defaults]\nrate_limit = 9\n[discord]\ndefault_status = "active"\n'
        '[general]\nlog_level = "error"\n',
    )
    assert running.reload_config() is True
    assert running.manager.defaults["rate_limit"] == 9
    assert running.live.get("discord.default_status") == "new"  # the database's wins
    assert running.live.get("general.log_level") == "error"
    write_config(mschat_home, "[defaults]\nrate_limit = -1\n")
    with caplog.at_level(logging.ERROR, "mschat"):
        assert running.reload_config() is False
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "defaults.rate_limit must be a positive integer" in line and "\n" not in line
    assert running.manager.defaults["rate_limit"] == 9


def test_values_are_checked_like_the_config_file() -> None:
    assert parse_value("defaults.rate_limit", "20") == 20
    assert parse_value("feedback.enabled", "off") is False
    with pytest.raises(ConfigError, match=r"^general.log_level must be one of 'debug'"):
        parse_value("general.log_level", "loud")
    with pytest.raises(ConfigError) as info:
        parse_value("api.port", "80")
    assert str(info.value) == (
        "api.port is not a live setting; live settings: " + ", ".join(LIVE_KEYS)
    )
