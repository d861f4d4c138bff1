"""A running ``mschat serve-discord`` applies ``mschat config set`` within 1 s; SIGHUP re-reads.

New members' status (``discord.default_status``) changed while the bot runs: the
next new member gets it and is answered, without a restart; both backends.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.conftest import eventually, fake_model_config
from tests.core.test_live import APPLIED_WITHIN, mschat
from tests.fakes.fake_discord import QA_CHANNEL_ID, FakeDiscord
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.servers import MschatProcess

DONE = "👌"


@pytest.fixture
async def db_services(
    mschat_home: Path, fake_thread: FakeOpenAIThread, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Services]:
    """The test's own view of the database the bot process uses."""
    monkeypatch.setenv("MSCHAT_DB", db_url)
    fake_model_config(mschat_home, fake_thread.start())
    services = build_services(load_config())
    yield services
    await services.aclose()


@pytest.mark.backends
async def test_bot_applies_a_new_default_status_without_restart(
    fake: FakeDiscord, db_services: Services, db_url: str
) -> None:
    env = {
        **os.environ,
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "MSCHAT_DISCORD_QA_CHANNELS": str(QA_CHANNEL_ID),
    }
    bot = await MschatProcess.start(env, "serve-discord", ready="connected as")
    manager = db_services.manager
    try:
        code, _ = await mschat(db_url, "config", "set", "discord.default_status", "active")
        assert code == 0
        await eventually(
            lambda: 'live setting discord.default_status = "active"' in bot.log, APPLIED_WITHIN
        )
        message = await fake.send_message(8, "hello from a newcomer")
        await fake.wait_until(lambda: DONE in fake.reactions.get(int(message["id"]), []), 20)
        assert (await manager.user("discord", "8")).status == "active"

        bot.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "config re-read" in bot.log)
        assert bot.process.returncode is None
    finally:
        assert await bot.stop() == 0
    assert "Traceback" not in bot.log
