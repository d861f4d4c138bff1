"""The whole chain over real sockets: fake Discord → bot → core → httpx → fake OpenAI."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.conftest import write_config
from tests.discord.conftest import start_bot, stop_bot
from tests.fakes.fake_discord import GUILD_ID, QA_CHANNEL_ID, FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI


@pytest.fixture
async def openai_services(mschat_home: Path) -> AsyncIterator[tuple[FakeOpenAI, Services]]:
    async with FakeOpenAI(chunk_size=7) as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "openai/fake-model"\n'
            f'[providers.openai]\nbase_url = "{server.base_url}"\napi_key = "sk-test"\n'
            'models = ["fake-model"]\nmax_retries = 0\n',
        )
        services = build_services(load_config())
        yield server, services
        await services.aclose()


async def test_answer_and_failure_through_the_openai_wire_protocol(
    fake: FakeDiscord, openai_services: tuple[FakeOpenAI, Services]
) -> None:
    server, services = openai_services
    _bot, task, stop = await start_bot(fake, services)
    user = await services.manager.user("discord", "1", name="user1")
    await services.manager.update_user(user, user.id, status="new")
    server.push(reply="SQLite is a small, fast database engine. " * 3)
    msg = await fake.send_message(1, "What is SQLite?")
    mid = int(msg["id"])
    await fake.wait_until(lambda: "👌" in fake.reactions.get(mid, []))
    [reply] = fake.replies_to(mid)
    assert reply["content"] == ("SQLite is a small, fast database engine. " * 3).strip()
    assert server.requests[-1]["messages"][-1]["content"] == "What is SQLite?"

    server.inject("500")
    failing = await fake.send_message(1, "And now?")
    fid = int(failing["id"])
    await fake.wait_until(lambda: "❌" in fake.reactions.get(fid, []))
    [error] = fake.replies_to(fid)
    assert error["content"].startswith("❌ The model failed")
    assert "sk-test" not in error["content"]
    await stop_bot(task, stop)


async def test_serve_discord_process_answers_and_stops_on_sigterm(
    fake: FakeDiscord, openai_services: tuple[FakeOpenAI, Services], mschat_home: Path
) -> None:
    server, services = openai_services
    user = await services.manager.user("discord", "1", name="user1")
    await services.manager.update_user(user, user.id, status="new")
    env = {
        **os.environ,
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "MSCHAT_DISCORD_QA_CHANNELS": str(QA_CHANNEL_ID),
        "MSCHAT_DISCORD_GUILD_IDS": str(GUILD_ID),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mschat",
        "serve-discord",
        "--log-level",
        "info",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake.wait_until(lambda: fake.identified and str(GUILD_ID) in fake.commands, 30)
        server.push(reply="from the process")
        msg = await fake.send_message(1, "hello process")
        mid = int(msg["id"])
        await fake.wait_until(lambda: "👌" in fake.reactions.get(mid, []), 20)
        assert fake.replies_to(mid)[0]["content"] == "from the process"
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    log = stderr.decode()
    assert "commands synced to guilds" in log and "stopped" in log
    assert fake.token not in log and "sk-test" not in log
