"""``mschat config set/unset/show --live`` and a running ``serve-api`` that follows them.

The server applies a change within 1 s, without a restart, on both backends;
SIGHUP re-reads config.toml (a bad file is one line, the old settings stay).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from mschat.cli import cli
from mschat.config import load_config
from mschat.core.services import build_services
from tests.conftest import eventually, write_config
from tests.core.test_live import APPLIED_WITHIN, mschat
from tests.servers import MschatProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.backends
async def test_serve_api_applies_config_set_and_rereads_on_sighup(
    mschat_home: Path, db_url: str
) -> None:
    config = write_config(mschat_home, "[defaults]\nrate_limit = 3\n")
    server = await MschatProcess.start(
        dict(os.environ),
        "--db",
        db_url,
        "serve-api",
        "--port",
        str(free_port()),
        ready="mschat API listening on",
    )
    try:
        # the log level first: the server then tells each change it applies
        assert (await mschat(db_url, "config", "set", "general.log_level", "info"))[0] == 0
        await eventually(
            lambda: 'live setting general.log_level = "info"' in server.log, APPLIED_WITHIN
        )
        assert (await mschat(db_url, "config", "set", "defaults.rate_limit", "7"))[0] == 0
        await eventually(
            lambda: "live setting defaults.rate_limit = 7 (from the database)" in server.log,
            APPLIED_WITHIN,
        )
        assert (await mschat(db_url, "config", "unset", "defaults.rate_limit"))[0] == 0
        await eventually(
            lambda: "live setting defaults.rate_limit = 3 (from the config)" in server.log,
            APPLIED_WITHIN,
        )

        config.write_text("[defaults\n", encoding="utf-8")
        server.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "config not re-read" in server.log)
        [line] = [line for line in server.lines if "config not re-read" in line]
        assert "invalid TOML" in line and "settings in effect are kept" in line
        config.write_text("[defaults]\none_question_at_a_time = true\n", encoding="utf-8")
        server.process.send_signal(signal.SIGHUP)
        await eventually(
            lambda: (
                "live setting defaults.one_question_at_a_time = true (from the config)"
                in server.log
            )
        )
        await eventually(lambda: "config re-read" in server.log)
        assert "feedback.enabled" not in server.log  # only what changed is told
        assert server.process.returncode is None
    finally:
        assert await server.stop() == 0
    assert "Traceback" not in server.log


def test_bad_value_and_non_live_key_are_one_line(mschat_home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["config", "set", "defaults.rate_limit", "many"])
    assert result.exit_code == 1
    assert result.output == ("Error: defaults.rate_limit must be a positive integer, got 'many'\n")
    result = runner.invoke(cli, ["config", "unset", "api.port"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: api.port is not a live setting; live settings: ")
    assert "general.log_level" in result.output and result.output.count("\n") == 1
    assert not (mschat_home / "mschat.db").exists()  # refused before the database


def test_only_the_local_admin_may_set(mschat_home: Path) -> None:
    async def revoke() -> None:
        services = build_services(load_config())
        local = await services.manager.local_user()
        services.store.update_user(local.id, admin=0)
        await services.aclose()

    asyncio.run(revoke())
    result = CliRunner().invoke(cli, ["config", "set", "feedback.enabled", "false"])
    assert result.exit_code == 1
    assert "only an admin may change live settings" in result.output
    result = CliRunner().invoke(cli, ["config", "show", "--live", "--json"])
    assert '"source": "config"' in result.output and '"database"' not in result.output


def test_show_live_tells_where_each_value_comes_from(mschat_home: Path) -> None:
    write_config(mschat_home, '[discord]\ndefault_status = "new"\n')
    runner = CliRunner()
    assert runner.invoke(cli, ["config", "set", "discord.default_status", "active"]).exit_code == 0
    result = runner.invoke(cli, ["config", "show", "--live"])
    assert result.exit_code == 0
    [row] = [line for line in result.output.splitlines() if "discord.default_status" in line]
    assert row.split()[:4] == ["discord.default_status", '"active"', "database", '"new"']
    assert "tester at " in row
    result = runner.invoke(cli, ["config", "unset", "discord.default_status"])
    assert result.output == 'discord.default_status unset; in effect: "new" (config)\n'
