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
from tests.conftest import eventually, write_config
from tests.discord.conftest import start_bot, stop_bot
from tests.fakes.fake_discord import APP_ID, GUILD_ID, QA_CHANNEL_ID, FakeDiscord
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


async def test_serve_discord_prints_the_invite_url_and_shows_hostile_text_visibly(
    fake: FakeDiscord, openai_services: tuple[FakeOpenAI, Services], mschat_home: Path
) -> None:
    server, services = openai_services
    hostile = "\x1b[2J\x1b]52;c;aGk=\x07\x1b]0;owned\x07\x1b]8;;http://evil/\x07x\x9b31m"
    fake.bot_user["username"] = f"mschat{hostile}bot"  # a name Discord hands the bot
    # Discord refuses the answer with an error text of its own
    fake.refuse("POST", f"/channels/{QA_CHANNEL_ID}/messages", 400, f"refused{hostile}")
    user = await services.manager.user("discord", "1", name="user1")
    await services.manager.update_user(user, user.id, status="new")
    env = {
        **os.environ,
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "MSCHAT_DISCORD_QA_CHANNELS": str(QA_CHANNEL_ID),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mschat",
        "serve-discord",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[bytes] = []

    async def read() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            lines.append(line)

    reader = asyncio.create_task(read())
    try:
        # the default log level (info) shows the invite once READY names the application
        await eventually(lambda: any(b"invite the bot" in line for line in lines), 30)
        server.push(reply="an answer Discord will refuse")
        msg = await fake.send_message(1, "hello process")
        mid = int(msg["id"])
        await fake.wait_until(lambda: "❌" in fake.reactions.get(mid, []), 20)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        await asyncio.wait_for(reader, 5)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    raw = b"".join(lines)
    log = raw.decode()
    [invite] = [line for line in log.splitlines() if "invite the bot" in line]
    assert invite.endswith(
        f"https://discord.com/oauth2/authorize?client_id={APP_ID}"
        "&scope=bot+applications.commands&permissions=274878008384"
    )
    # the bot's name and Discord's error reached the log, shown, not obeyed
    assert "connected as mschat␛[2J␛]52;c;aGk=␇" in log
    assert "could not deliver the answer" in log and "refused␛[2J" in log
    for control in (b"\x1b", b"\x07", "\x9b".encode()):
        assert control not in raw
