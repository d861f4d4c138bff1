"""The sharded bot: its settings, and two shards over one database behaving as one bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mschat.config import load_config
from mschat.core.errors import ConfigError
from mschat.core.services import Services, build_services
from mschat.discord.bot import MschatBot, ShardedMschatBot, make_bot
from tests.conftest import write_config
from tests.discord.conftest import start_bot, stop_bot
from tests.fakes.fake_discord import GUILD_ID, QA_CHANNEL_ID, FakeDiscord
from tests.fakes.scripted_provider import ScriptedProvider

CONFIG = (
    '[general]\ndefault_model = "fake/fake-model"\n'
    '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n'
)
WRITING, DONE, WAITING = "✍🏻", "👌", "⏳"


def services_with(home: Path, provider: ScriptedProvider, discord: str) -> Services:
    """Services whose config has these ``[discord]`` lines."""
    write_config(home, CONFIG + "[discord]\n" + discord)
    return build_services(load_config(), providers={"fake": provider})


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        ("shard_ids = [1]\n", "discord.shard_ids needs discord.shard_count"),
        ("shard_count = 2\nshard_ids = [2]\n", "from 0 to 1, got [2]"),
        ("shard_count = 2\nshard_ids = [0, 0]\n", "distinct"),
    ],
)
async def test_inconsistent_shard_settings_are_one_clear_error(
    mschat_home: Path, provider: ScriptedProvider, keys: str, error: str
) -> None:
    services = services_with(mschat_home, provider, keys)
    try:
        with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
            make_bot(services)
    finally:
        await services.aclose()


async def test_shard_keys_make_an_auto_sharded_bot_and_none_the_bot_of_today(
    mschat_home: Path, provider: ScriptedProvider
) -> None:
    sharded = services_with(mschat_home, provider, "shard_count = 4\nshard_ids = [3, 1]\n")
    bot = make_bot(sharded)
    assert isinstance(bot, ShardedMschatBot)
    assert (bot.shard_count, bot.shard_ids, bot.leader) == (4, [1, 3], False)
    await sharded.aclose()
    every = services_with(mschat_home, provider, "shard_count = 2\n")
    bot = make_bot(every)
    assert isinstance(bot, ShardedMschatBot) and bot.shard_ids == [0, 1] and bot.leader
    await every.aclose()
    plain = services_with(mschat_home, provider, "")
    bot = make_bot(plain)
    assert type(bot) is MschatBot and bot.leader
    await plain.aclose()


@pytest.fixture
async def second_services(
    services: Services, provider: ScriptedProvider
) -> AsyncIterator[Services]:
    """Another process's services over the same database file (and the same provider)."""
    other = build_services(services.config, providers={"fake": provider})
    assert other.store.path == services.store.path and other.manager is not services.manager
    yield other
    await other.aclose()


async def test_two_shards_over_one_database_are_one_bot(
    fake: FakeDiscord, services: Services, second_services: Services, provider: ScriptedProvider
) -> None:
    guild = fake.add_guild(shard=0, shard_count=2)  # GUILD_ID is on shard 1 of 2
    channel = guild.channels[0][0]
    qa = [channel, QA_CHANNEL_ID]
    bot0, task0, stop0 = await start_bot(
        fake, services, shard_count=2, shard_ids=[0], qa_channels=qa
    )
    bot1, task1, stop1 = await start_bot(
        fake, second_services, shard_count=2, shard_ids=[1], qa_channels=qa
    )
    # each shard was told about its own guilds only; only shard 0 synced the commands
    assert sorted(zip(fake.identifies, fake.ready_guilds, strict=True)) == [
        ((0, 2), [guild.id]),
        ((1, 2), [GUILD_ID]),
    ]
    assert [g.id for g in bot0.guilds] == [guild.id] and [g.id for g in bot1.guilds] == [GUILD_ID]
    assert len(fake.calls_to("PUT", "/commands")) == 1

    # a disabled user mentioning the bot on both shards is told how to opt in once
    first = await fake.send_message(5, "hello?", channel_id=channel, mention_bot=True)
    await fake.wait_until(lambda: fake.replies_to(first["id"]))
    second = await fake.send_message(5, "anyone?", channel_id=QA_CHANNEL_ID, mention_bot=True)
    user = await services.manager.user("discord", "6", name="user6")
    await services.manager.update_user(user, user.id, status="new")
    probe = await fake.send_message(6, "probe on shard 1")  # answered after "anyone?"
    await fake.wait_until(lambda: DONE in fake.reactions.get(int(probe["id"]), []))
    assert not fake.replies_to(second["id"])
    shards = {mid: shard for event, shard, mid in fake.deliveries if event == "MESSAGE_CREATE"}
    assert (shards[first["id"]], shards[second["id"]], shards[probe["id"]]) == (0, 1, 1)

    # a DM goes to shard 0
    dm = await fake.send_message(6, "privately", dm=True)
    await fake.wait_until(lambda: DONE in fake.reactions.get(int(dm["id"]), []))
    assert shards | {dm["id"]: 0} == {
        mid: shard for event, shard, mid in fake.deliveries if event == "MESSAGE_CREATE"
    }
    await stop_bot(task1, stop1)
    await stop_bot(task0, stop0)


async def test_a_private_session_takes_turns_across_shards(
    fake: FakeDiscord, services: Services, second_services: Services, provider: ScriptedProvider
) -> None:
    """A DM (shard 0) and a guild message (shard 1) of one user, in their private session."""
    _bot0, task0, stop0 = await start_bot(fake, services, shard_count=2, shard_ids=[0])
    _bot1, task1, stop1 = await start_bot(fake, second_services, shard_count=2, shard_ids=[1])
    manager = services.manager
    user = await manager.user("discord", "1", name="user1")
    await manager.update_user(user, user.id, status="new", attach=True)
    started = await fake.send_message(1, "a private start", dm=True)
    await fake.wait_until(lambda: DONE in fake.reactions.get(int(started["id"]), []))
    user = await manager.user("discord", "1")
    session = await manager.get_session(user, user.current_session_id)
    assert not session.public and user.status == "active"

    gate = asyncio.Event()
    provider.push(chunks=["the DM's answer"], gate=gate)
    dm = await fake.send_message(1, "asked in the DM", dm=True)
    await fake.wait_until(
        lambda: fake.replies_to(dm["id"]) or WRITING in fake.reactions.get(int(dm["id"]), [])
    )
    guild = await fake.send_message(1, "asked in the guild")  # GUILD_ID: shard 1
    gid = int(guild["id"])
    await fake.wait_until(lambda: WAITING in fake.reactions.get(gid, []))
    assert not fake.replies_to(gid)
    gate.set()
    await fake.wait_until(lambda: DONE in fake.reactions.get(gid, []))
    messages = await manager.messages(user, session.id)
    assert [m.content for m in messages] == [
        "a private start",
        "Echo: a private start",
        "asked in the DM",
        "the DM's answer",
        "asked in the guild",
        "Echo: asked in the guild",
    ]
    # the guild's question saw the DM's answer
    assert "the DM's answer" in [m.content for m in provider.requests[-1].messages]
    await stop_bot(task1, stop1)
    await stop_bot(task0, stop0)


async def test_the_fake_recommends_a_shard_count_at_gateway_bot(fake: FakeDiscord) -> None:
    """What discord.py asks when it is sharded without a shard count."""
    fake.recommended_shards = 3
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{fake.api_base}/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}
        ) as response,
    ):
        body = await response.json()
    assert body["shards"] == 3 and body["url"] == fake.gateway_url
    assert body["session_start_limit"]["max_concurrency"] >= 1
