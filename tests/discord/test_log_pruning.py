"""serve-discord prunes the logs older than ``logs.retention_days`` when it starts."""

from __future__ import annotations

from mschat.core.services import Services
from tests.conftest import eventually
from tests.core.test_log_pruning import empty, logged, sizes
from tests.discord.conftest import start_bot, stop_bot
from tests.fakes.fake_discord import FakeDiscord


async def test_the_bot_prunes_old_logs_at_start(fake: FakeDiscord, services: Services):
    await logged(services)
    assert await sizes(services) == (1, 1)
    _, task, stop = await start_bot(fake, services)
    try:
        await eventually(lambda: empty(services))
    finally:
        await stop_bot(task, stop)
