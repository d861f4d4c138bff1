"""Two ``mschat serve-discord`` processes, shards 0 and 1 of 2, over one database file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.conftest import fake_model_config
from tests.fakes.fake_discord import GUILD_ID, QA_CHANNEL_ID, FakeDiscord, walk_components
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.servers import MschatProcess

DONE = "👌"


@pytest.fixture
async def db_services(mschat_home: Path, fake_thread: FakeOpenAIThread) -> AsyncIterator[Services]:
    """The test's own view of the database the shard processes share."""
    fake_model_config(mschat_home, fake_thread.start())
    services = build_services(load_config())
    yield services
    await services.aclose()


async def test_two_shard_processes_are_one_bot(
    fake: FakeDiscord, db_services: Services, mschat_home: Path
) -> None:
    guild = fake.add_guild(shard=0, shard_count=2)  # GUILD_ID is on shard 1 of 2
    channel0 = guild.channels[0][0]
    manager = db_services.manager
    user = await manager.user("discord", "7", name="user7")
    await manager.update_user(user, user.id, status="new", attach=True)
    processes: list[MschatProcess] = []

    async def start(shard_ids: str) -> MschatProcess:
        env = {
            **os.environ,
            "MSCHAT_HOME": str(mschat_home),
            "MSCHAT_DISCORD_TOKEN": fake.token,
            "MSCHAT_DISCORD_API_BASE": fake.api_base,
            "MSCHAT_DISCORD_GATEWAY_URL": fake.gateway_url,
            "MSCHAT_DISCORD_QA_CHANNELS": f"{channel0},{QA_CHANNEL_ID}",
            "MSCHAT_DISCORD_SHARD_COUNT": "2",
            "MSCHAT_DISCORD_SHARD_IDS": shard_ids,
        }
        shard = await MschatProcess.start(
            env, "serve-discord", "--log-level", "info", ready="connected as"
        )
        processes.append(shard)
        return shard

    async def ask(text: str, **where: Any) -> dict[str, Any]:
        message = await fake.send_message(7, text, **where)
        await fake.wait_until(lambda: DONE in fake.reactions.get(int(message["id"]), []), 20)
        return message

    def shard_of(event_id: str) -> int | None:
        return next(shard for _, shard, eid in fake.deliveries if eid == event_id)

    try:
        first, second = await start("0"), await start("1")
        assert sorted(fake.identifies, key=str) == [(0, 2), (1, 2)]
        assert sorted(fake.ready_guilds) == sorted([[guild.id], [GUILD_ID]])
        # only the process serving shard 0 syncs the commands and logs the invite
        await fake.wait_until(lambda: "global" in fake.commands, 20)
        assert len(fake.calls_to("PUT", "/commands")) == 1
        assert "invite the bot" in first.log and "invite the bot" not in second.log
        assert "shards 0 of 2 (syncs commands)" in first.log
        assert "shards 1 of 2 (leaves commands to shard 0)" in second.log

        # one session, started on shard 0, continued by a DM (shard 0) and on shard 1
        started = await ask("started in guild zero", channel_id=channel0)
        dm = await ask("continued in a DM", dm=True)
        other = await ask("continued on shard one", channel_id=QA_CHANNEL_ID)
        assert [shard_of(m["id"]) for m in (started, dm, other)] == [0, 0, 1]
        user = await manager.user("discord", "7")
        [session] = await manager.list_sessions(user, include_public=False)
        assert session.public and user.current_session_id == session.id
        messages = await manager.messages(user, session.id)
        assert [m.content for m in messages if m.role == "user"] == [
            "started in guild zero",
            "continued in a DM",
            "continued on shard one",
        ]
        assert all(m.status == "complete" for m in messages) and len(messages) == 6

        # the status chosen in a panel on shard 1 rules the next message on shard 0
        panel_command = await fake.slash(7, "user", channel_id=QA_CHANNEL_ID)
        panel = await fake.wait_until(
            lambda: next(
                (m for m in fake.interaction_messages(panel_command) if m["components"]), None
            ),
            20,
        )
        assert shard_of(panel_command["id"]) == 1
        await fake.click(7, panel, f"mschat:user:{user.id}:status", ["new"])
        await fake.wait_until(lambda: fake.edits.get(int(panel["id"]), 0) >= 2, 20)
        fresh = await ask("a new session please", channel_id=channel0)
        assert shard_of(fresh["id"]) == 0
        user = await manager.user("discord", "7")
        sessions = await manager.list_sessions(user, include_public=False)
        assert len(sessions) == 2 and user.current_session_id != session.id

        # a button on an answer the first process sent, clicked once another process
        # serves shard 0: its click reaches that process, which records the feedback
        [answer] = fake.replies_to(started["id"])
        button = next(
            c["custom_id"] for c in walk_components(answer) if c["custom_id"].endswith(":fb:good")
        )
        assert await first.stop() == 0
        third = await start("0")
        click = await fake.click(7, answer, button)
        await fake.wait_until(
            lambda: any(
                "feedback (good)" in m["content"] for m in fake.interaction_messages(click)
            ),
            20,
        )
        assert shard_of(click["id"]) == 0 and "shards 0 of 2" in third.log
        rows = await manager._run(
            lambda: list(db_services.store.db.query("SELECT kind, message_id FROM feedback"))
        )
        assert rows == [{"kind": "good", "message_id": messages[1].id}]
    finally:
        codes = [await p.stop() for p in processes]
    assert codes == [0] * len(processes)
    for shard in processes:
        assert "Traceback" not in shard.log and fake.token not in shard.log
