"""Fixtures: a loopback fake Discord and a real discord.py bot connected to it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest

from mschat.core.services import Services
from mschat.discord.bot import MschatBot, configure_endpoints, make_bot, serve
from tests.fakes.fake_discord import QA_CHANNEL_ID, FakeDiscord
from tests.fakes.scripted_provider import ScriptedProvider


@dataclass
class Harness:
    """The fake Discord, the running bot and the core behind it."""

    fake: FakeDiscord
    bot: MschatBot
    services: Services
    provider: ScriptedProvider
    task: asyncio.Task[None]
    stop: asyncio.Event

    @property
    def manager(self) -> Any:
        """The bot's SessionManager."""
        return self.services.manager

    async def discord_user(self, discord_id: int, **settings: Any) -> Any:
        """The mschat user of a Discord member, with settings applied."""
        user = await self.manager.user("discord", str(discord_id), name=f"user{discord_id}")
        if settings:
            user = await self.manager.update_user(user, user.id, **settings)
        return user


async def start_bot(
    fake: FakeDiscord, services: Services, *, grace: float = 2.0, **options: Any
) -> tuple[MschatBot, asyncio.Task[None], asyncio.Event]:
    """Start a bot against the fake and wait until it is ready."""
    configure_endpoints(fake.api_base, fake.gateway_url)
    options.setdefault("qa_channels", [QA_CHANNEL_ID])
    options.setdefault("edit_interval", 0.05)
    options.setdefault("guild_ids", [])
    bot = make_bot(services, guild_ready_timeout=0.01, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(bot, fake.token, stop=stop, grace=grace))
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raise the startup error
    assert ready in done, "the bot did not become ready"
    return bot, task, stop


async def stop_bot(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Ask the bot to shut down and wait for it."""
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord (discord.py's endpoints are restored afterwards).

    ``FAKE_DISCORD_RATE_LIMITS=1`` runs every test with Discord's rate limits on
    (``FAKE_DISCORD_RATE_SCALE`` shortens their windows).
    """
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    limits = os.environ.get("FAKE_DISCORD_RATE_LIMITS", "") not in ("", "0")
    scale = float(os.environ.get("FAKE_DISCORD_RATE_SCALE") or 1.0)
    async with FakeDiscord(rate_limits=limits, rate_scale=scale) as server:
        yield server
    discord.http.Route.BASE = base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


@pytest.fixture
async def harness(
    fake: FakeDiscord, services: Services, provider: ScriptedProvider
) -> AsyncIterator[Harness]:
    """A bot connected to the fake, with the scripted provider behind it."""
    bot, task, stop = await start_bot(fake, services)
    yield Harness(fake, bot, services, provider, task, stop)
    if not task.done():
        await stop_bot(task, stop)


@pytest.fixture
def h(harness: Harness) -> Harness:
    """Short name for the harness."""
    return harness


async def interaction_rows(h: Harness, where: str = "1") -> list[dict[str, Any]]:
    """Rows of the interactions table."""
    store = h.manager.store
    return await h.manager._run(
        lambda: list(store.db.query(f"SELECT * FROM interactions WHERE {where} ORDER BY id"))
    )
