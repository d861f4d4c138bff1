"""``mschat serve-discord`` killed (SIGKILL) mid-answer and started again: the answer is
finished in the same message, a Q&A one and a ``/chat`` one."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from mschat.config import load_config
from mschat.core.answer.turns import stamp
from mschat.core.services import Services, build_services
from tests.conftest import eventually, fake_model_config
from tests.dbs import sql
from tests.fakes.fake_discord import QA_CHANNEL_ID, FakeDiscord
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.servers import MschatProcess

DONE = "👌"
pytestmark = pytest.mark.backends


@pytest.fixture
async def db_services(
    mschat_home: Path, fake_thread: FakeOpenAIThread, db_url: str
) -> AsyncIterator[Services]:
    """The test's own view of the database the bot processes share."""
    fake_model_config(mschat_home, fake_thread.start())
    services = build_services(load_config(db=db_url))
    yield services
    await services.aclose()


async def test_a_killed_bot_finishes_its_answers_when_started_again(
    fake: FakeDiscord,
    fake_thread: FakeOpenAIThread,
    db_services: Services,
    mschat_home: Path,
    db_url: str,
) -> None:
    manager = db_services.manager
    user = await manager.user("discord", "7", name="user7")
    await manager.update_user(user, user.id, status="active")
    other = await manager.user("discord", "8", name="user8")  # another session, not waiting
    await manager.update_user(other, other.id, status="active")
    env = {
        **os.environ,
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DB": db_url,
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "MSCHAT_DISCORD_QA_CHANNELS": str(QA_CHANNEL_ID),
        "MSCHAT_DISCORD_EDIT_INTERVAL": "0.05",
    }

    def start() -> Any:
        return MschatProcess.start(
            env, "serve-discord", "--log-level", "info", ready="connected as"
        )

    def surfaces() -> list[tuple[Any, ...]]:
        return sql(db_services.store, "SELECT kind, message_id FROM reply_surfaces")

    first = await start()
    try:
        # the model is held mid-answer (it sends one chunk, then nothing)
        fake_thread.push(fault="stall", reply="half of it, and the rest", after_chunks=1)
        question = await fake.send_message(7, "tell me")
        answer = await fake.wait_until(lambda: (fake.replies_to(question["id"]) or [None])[0], 20)
        fake_thread.push(fault="stall", reply="the chat answer held", after_chunks=1)
        interaction = await fake.slash(8, "chat", {"prompt": "and you?"})
        await eventually(lambda: len(surfaces()) == 2, 20)
        chat_message = await fake.wait_until(
            lambda: next(iter(fake.interaction_messages(interaction)), None)
        )
        first.process.kill()  # SIGKILL: nothing is cleaned up
        await first.process.wait()
    finally:
        await first.stop()
    assert fake.messages[int(answer["id"])]["content"].startswith("half")
    # the dead writer's 30 s leases (its replies', its sessions' turns) run out
    # (instead of waiting for them)
    past = [stamp(timedelta(seconds=-1))]
    sql(db_services.store, "UPDATE messages SET lease_until = ? WHERE status = 'streaming'", past)
    sql(
        db_services.store, "UPDATE sessions SET lease_until = ? WHERE lease_until IS NOT NULL", past
    )

    fake_thread.push(reply="the whole answer")
    fake_thread.push(reply="the whole answer")  # whichever is answered first
    second = await start()
    try:
        mid, cid = int(answer["id"]), int(chat_message["id"])
        await fake.wait_until(
            lambda: (
                fake.messages[mid]["content"] == "the whole answer"
                and fake.messages[cid]["content"] == "> and you?\n\nthe whole answer"
                and DONE in fake.reactions.get(int(question["id"]), [])
            ),
            30,
        )
        assert fake.messages[mid]["components"] and fake.messages[cid]["components"]
        assert len(fake.bot_messages()) == 2  # the same messages, no new ones
        await eventually(lambda: not surfaces(), 10)
    finally:
        assert await second.stop() == 0


async def test_a_killed_bot_finishes_a_private_answer_ephemerally(
    fake: FakeDiscord,
    fake_thread: FakeOpenAIThread,
    db_services: Services,
    mschat_home: Path,
    db_url: str,
) -> None:
    """A ``/private`` answer is finished in its ephemeral response, through the
    interaction's token, by the restarted bot: no message the channel could see."""
    manager = db_services.manager
    user = await manager.user("discord", "9", name="user9")
    await manager.update_user(user, user.id, status="active")
    env = {
        **os.environ,
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DB": db_url,
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "MSCHAT_DISCORD_QA_CHANNELS": str(QA_CHANNEL_ID),
        "MSCHAT_DISCORD_EDIT_INTERVAL": "0.05",
    }

    def start() -> Any:
        return MschatProcess.start(
            env, "serve-discord", "--log-level", "info", ready="connected as"
        )

    def surfaces() -> list[tuple[Any, ...]]:
        return sql(db_services.store, "SELECT kind FROM reply_surfaces")

    first = await start()
    try:
        fake_thread.push(fault="stall", reply="half of it, and the rest", after_chunks=1)
        interaction = await fake.slash(9, "private", {"prompt": "only me?"})
        await eventually(lambda: surfaces() == [("interaction",)], 20)
        held = await fake.wait_until(
            lambda: next(iter(fake.interaction_messages(interaction)), None)
        )
        first.process.kill()  # SIGKILL
        await first.process.wait()
    finally:
        await first.stop()
    past = [stamp(timedelta(seconds=-1))]
    sql(db_services.store, "UPDATE messages SET lease_until = ? WHERE status = 'streaming'", past)
    sql(
        db_services.store, "UPDATE sessions SET lease_until = ? WHERE lease_until IS NOT NULL", past
    )

    fake_thread.push(reply="the whole private answer")
    second = await start()
    try:
        mid = int(held["id"])
        await fake.wait_until(
            lambda: fake.messages[mid]["content"] == "> only me?\n\nthe whole private answer", 30
        )
        message = fake.messages[mid]
        assert message["flags"] & 64  # still ephemeral: only its caller sees it
        assert message["components"]  # the feedback buttons, as any answer
        assert [m["id"] for m in fake.bot_messages()] == [held["id"]]  # nothing new
        await eventually(lambda: not surfaces(), 10)
        [(public,)] = sql(
            db_services.store,
            "SELECT s.public FROM sessions s JOIN messages m ON m.session_id = s.id "
            "WHERE m.content = 'the whole private answer'",
        )
        assert not public
    finally:
        assert await second.stop() == 0


async def test_a_killed_http_interactions_endpoint_finishes_its_chat_answer(
    fake: FakeDiscord,
    fake_thread: FakeOpenAIThread,
    db_services: Services,
    mschat_home: Path,
    db_url: str,
) -> None:
    """The same with ``serve-discord --no-gateway``: the token came in an HTTP POST."""
    manager = db_services.manager
    user = await manager.user("discord", "8", name="user8")
    await manager.update_user(user, user.id, status="active")
    key = SigningKey.generate()
    env = {
        **os.environ,
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DB": db_url,
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_INTERACTIONS_LISTEN": "127.0.0.1:0",
        "MSCHAT_DISCORD_PUBLIC_KEY": key.verify_key.encode().hex(),
        "MSCHAT_DISCORD_EDIT_INTERVAL": "0.05",
    }

    async def start() -> MschatProcess:
        process = await MschatProcess.start(
            env,
            "serve-discord",
            "--no-gateway",
            "--log-level",
            "info",
            ready="interactions endpoint listening on",
        )
        url = re.search(r"listening on (http://\S+)", process.log)
        assert url is not None
        fake.deliver_over_http([url.group(1) + "/interactions"], key)
        return process

    first = await start()
    try:
        fake_thread.push(fault="stall", reply="the chat answer held", after_chunks=1)
        interaction = await fake.slash(8, "chat", {"prompt": "and you?"})
        await eventually(
            lambda: sql(db_services.store, "SELECT kind FROM reply_surfaces") == [("interaction",)],
            20,
        )
        chat_message = await fake.wait_until(
            lambda: next(iter(fake.interaction_messages(interaction)), None)
        )
        first.process.kill()  # SIGKILL: nothing is cleaned up
        await first.process.wait()
    finally:
        await first.stop()
    assert fake.identified == 0  # no gateway: the token came over HTTP
    # the dead writer's leases run out (instead of waiting for them)
    past = [stamp(timedelta(seconds=-1))]
    sql(db_services.store, "UPDATE messages SET lease_until = ? WHERE status = 'streaming'", past)
    sql(
        db_services.store, "UPDATE sessions SET lease_until = ? WHERE lease_until IS NOT NULL", past
    )
    fake_thread.push(reply="the whole answer")
    second = await start()
    try:
        cid = int(chat_message["id"])
        await fake.wait_until(
            lambda: fake.messages[cid]["content"] == "> and you?\n\nthe whole answer", 30
        )
        assert fake.messages[cid]["components"]  # the feedback buttons
        assert len(fake.interaction_messages(interaction)) == 1  # the same message
        await eventually(
            lambda: not sql(db_services.store, "SELECT reply_id FROM reply_surfaces"), 10
        )
    finally:
        assert await second.stop() == 0
