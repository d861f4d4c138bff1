"""Startup, tokens, restarts with old buttons, shutdown with replies in flight."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from mschat.cli import cli
from mschat.core.errors import ConfigError
from mschat.core.services import Services
from mschat.discord.bot import configure_endpoints, make_bot, run, serve
from tests.discord.conftest import start_bot, stop_bot
from tests.fakes.fake_discord import GUILD_ID, FakeDiscord
from tests.fakes.scripted_provider import ScriptedProvider


async def test_restart_keeps_old_buttons_working(fake: FakeDiscord, services: Services) -> None:
    bot, task, stop = await start_bot(fake, services)
    user = await services.manager.user("discord", "1", name="user1")
    interaction = await fake.slash(1, "user")
    panel = await fake.wait_until(
        lambda: next(
            (m for m in fake.interaction_messages(interaction) if not m["flags"] & 128), None
        )
    )
    await stop_bot(task, stop)
    assert bot.is_closed()

    # a new process: a new bot over the same database, nothing in memory
    bot2, task2, stop2 = await start_bot(fake, services)
    assert bot2 is not bot and fake.identified == 2
    await fake.click(1, panel, f"mschat:user:{user.id}:attach")
    mid = int(panel["id"])
    await fake.wait_until(lambda: fake.edits.get(mid, 0) >= 2)
    assert "Attach: on" in str(fake.messages[mid]["components"])
    assert (await services.manager.user("discord", "1")).attach
    await stop_bot(task2, stop2)


async def test_guild_ids_sync_commands_to_those_guilds(
    fake: FakeDiscord, services: Services
) -> None:
    _bot, task, stop = await start_bot(fake, services, guild_ids=[GUILD_ID])
    assert str(GUILD_ID) in fake.commands
    names = {c["name"] for c in fake.commands[str(GUILD_ID)]}
    assert names == {"user", "session", "Session info", "chat", "private", "clear"}
    await stop_bot(task, stop)


async def test_a_rejected_token_is_a_clear_error(fake: FakeDiscord, services: Services) -> None:
    configure_endpoints(fake.api_base, fake.gateway_url)
    bot = make_bot(services, guild_ready_timeout=0.01)
    with pytest.raises(ConfigError, match="rejected the bot token"):
        await serve(bot, "not-the-token")
    assert bot.is_closed()


def test_a_missing_token_is_a_clear_error() -> None:
    class Config:
        def get(self, section: str, key: str) -> None:
            return None

    class FakeServices:
        config = Config()

    with pytest.raises(ConfigError, match="no Discord bot token") as info:
        run(FakeServices(), log_level="info")  # type: ignore[arg-type]
    assert "MSCHAT_DISCORD_TOKEN" in str(info.value)


def test_cli_without_token_exits_with_a_message() -> None:
    result = CliRunner().invoke(cli, ["serve-discord"])
    assert result.exit_code == 1
    assert "no Discord bot token" in result.output


async def test_shutdown_interrupts_a_reply_in_flight(
    fake: FakeDiscord, services: Services, provider: ScriptedProvider
) -> None:
    _bot, task, stop = await start_bot(fake, services, grace=0.2)
    user = await services.manager.user("discord", "1", name="user1")
    await services.manager.update_user(user, user.id, status="new")
    provider.push(chunks=["half an answer"], gate=asyncio.Event())  # never released
    msg = await fake.send_message(1, "a long question")
    await fake.wait_until(lambda: fake.replies_to(msg["id"]))
    stop.set()
    await asyncio.wait_for(task, 10)
    [reply] = fake.replies_to(msg["id"])
    assert reply["content"].startswith("half an answer") and "interrupted" in reply["content"]
    assert fake.reactions[int(msg["id"])] == ["❌"]
    [session] = await services.manager.list_sessions(user)
    messages = await services.manager.messages(user, session.id)
    assert [m.status for m in messages] == ["complete", "interrupted"]
    assert messages[1].content == "half an answer"
