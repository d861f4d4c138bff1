"""Moderation on Discord: a flagged question and a withheld answer are one clear line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.services import build_services
from tests.conftest import write_config
from tests.discord.conftest import Harness, start_bot, stop_bot
from tests.discord.test_qa import FAILED, answered
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.scripted_provider import ScriptedProvider


@pytest.fixture
async def moderated(
    fake: FakeDiscord, mschat_home: Path, provider: ScriptedProvider
) -> AsyncIterator[tuple[Harness, FakeOpenAI]]:
    """The bot over the scripted model, moderated by the fake OpenAI server."""
    async with FakeOpenAI() as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n'
            f'[providers.mod]\nbase_url = "{server.base_url}"\nmodels = ["m"]\n'
            '[moderation]\nmodel = "mod/omni-moderation-latest"\n',
        )
        services = build_services(load_config(), providers={"fake": provider})
        bot, task, stop = await start_bot(fake, services)
        yield Harness(fake, bot, services, provider, task, stop), server
        if not task.done():
            await stop_bot(task, stop)
        await services.aclose()


async def test_flagged_question_and_withheld_answer_in_q_and_a(
    moderated: tuple[Harness, FakeOpenAI],
) -> None:
    h, server = moderated
    await h.discord_user(1, status="active")
    server.flag("poison", category="violence")

    asked = await h.fake.send_message(1, "which poison works best?")
    [reply] = await answered(h, asked, FAILED)
    assert reply["content"] == (
        "⚠️ your question was flagged by moderation (violence) and not answered"
    )
    assert h.provider.requests == []

    h.provider.push(chunks=["a poison ", "recipe"])
    story = await h.fake.send_message(1, "tell me a story")
    [reply] = await answered(h, story, FAILED)
    assert reply["content"] == "⚠️ the answer was withheld: moderation flagged it (violence)"
    assert "recipe" not in str(h.fake.messages)  # in no message of the channel
