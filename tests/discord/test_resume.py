"""A bot restarted mid-answer finishes the answer in the same message (or says it cannot).

What a killed bot leaves is built here as it would have left it: the question and
half an answer on Discord, the reply ``streaming`` with an expired lease and its
surface stored (the first test shows a live bot stores exactly that).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from mschat.core.answer.turns import stamp
from mschat.core.services import Services
from tests.conftest import eventually
from tests.dbs import sql
from tests.discord.conftest import Harness, start_bot, stop_bot
from tests.fakes.fake_discord import APP_ID, QA_CHANNEL_ID, FakeDiscord
from tests.fakes.scripted_provider import ScriptedProvider

DONE = "👌"
pytestmark = pytest.mark.backends


def _surfaces(services: Services) -> list[tuple[Any, ...]]:
    return sql(services.store, "SELECT reply_id, kind, channel_id, message_id FROM reply_surfaces")


async def test_a_streaming_answer_is_remembered_until_it_ends(h: Harness) -> None:
    user = await h.manager.user("discord", "7", name="u7")
    await h.manager.update_user(user, user.id, status="new")
    gate = asyncio.Event()
    h.provider.push(chunks=["half ", "an answer"], gate=gate)
    question = await h.fake.send_message(7, "hello")
    answer = await h.fake.wait_until(lambda: (h.fake.replies_to(question["id"]) or [None])[0])
    (row,) = await eventually(lambda: _surfaces(h.services))
    assert row[1:] == ("message", str(QA_CHANNEL_ID), answer["id"])
    gate.set()
    await h.fake.wait_until(lambda: DONE in h.fake.reactions.get(int(question["id"]), []))
    await eventually(lambda: not _surfaces(h.services))


async def _left_behind(
    fake: FakeDiscord, services: Services, *, usable: timedelta, kind: str = "message"
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A question, half an answer and its stored reply, as a killed bot leaves them."""
    manager = services.manager
    user = await manager.user("discord", "7", name="u7")
    await manager.update_user(user, user.id, status="new")
    # no bot is listening: the question is put in the channel as it was
    question = fake._new_message(
        str(QA_CHANNEL_ID), {"content": "what is up"}, {}, author=fake.user(7)
    )
    body: dict[str, Any] = {"content": "half an ans"}
    extra: dict[str, Any] = {}
    token = f"itoken-{fake.new_id()}"
    if kind == "message":
        body["message_reference"] = {
            "message_id": question["id"],
            "channel_id": str(QA_CHANNEL_ID),
            "fail_if_not_exists": False,
        }
    else:
        fake.interactions[token] = {"channel_id": str(QA_CHANNEL_ID)}
    answer = fake._new_message(str(QA_CHANNEL_ID), body, {}, **extra)
    store = services.store
    session = store.create_session(creator_id=user.id, title="t", origin="discord_guild", public=1)
    _, reply = store.add_question(
        session.id,
        user.id,
        "what is up",
        model="fake/fake-model",
        lease_until=stamp(timedelta(seconds=-1)),
        external_ref=question["id"],
    )
    store.update_message(reply.id, content="half an ans")
    where: dict[str, Any] = {"channel_id": str(QA_CHANNEL_ID), "message_id": answer["id"]}
    if kind == "interaction":
        where |= {"application_id": str(APP_ID), "token": token}
    store.save_reply_surface(reply.id, kind, stamp(usable), **where)
    return question, answer, reply.id


async def test_a_restarted_bot_finishes_the_answer_in_its_message(
    fake: FakeDiscord, services: Services, provider: ScriptedProvider
) -> None:
    question, answer, _ = await _left_behind(fake, services, usable=timedelta(minutes=5))
    before = len(fake.bot_messages())
    provider.push(chunks=["a whole ", "answer"])
    _bot, task, stop = await start_bot(fake, services)
    try:
        mid = int(answer["id"])
        await fake.wait_until(lambda: fake.messages[mid]["content"] == "a whole answer")
        await fake.wait_until(lambda: DONE in fake.reactions.get(int(question["id"]), []))
        assert len(fake.bot_messages()) == before  # the same message, no new one
        assert fake.messages[mid]["components"]  # the feedback buttons
        (last,) = [m for m in services.store.messages(1) if m.role == "assistant"]
        assert (last.content, last.status) == ("a whole answer", "complete")
        await eventually(lambda: not _surfaces(services))
    finally:
        await stop_bot(task, stop)


async def test_a_chat_answer_is_finished_through_its_interaction(
    fake: FakeDiscord, services: Services, provider: ScriptedProvider
) -> None:
    _, answer, _ = await _left_behind(
        fake, services, usable=timedelta(minutes=5), kind="interaction"
    )
    provider.push(chunks=["finished ", "by webhook"])
    _bot, task, stop = await start_bot(fake, services)
    try:
        mid = int(answer["id"])
        await fake.wait_until(
            lambda: fake.messages[mid]["content"] == "> what is up\n\nfinished by webhook"
        )
        assert fake.calls_to("PATCH", "/webhooks/")
        await eventually(lambda: not _surfaces(services))
    finally:
        await stop_bot(task, stop)


async def test_a_too_old_answer_says_it_was_interrupted(
    fake: FakeDiscord, services: Services, provider: ScriptedProvider
) -> None:
    _, answer, reply_id = await _left_behind(fake, services, usable=timedelta(seconds=-1))
    _bot, task, stop = await start_bot(fake, services)
    try:
        mid = int(answer["id"])
        await fake.wait_until(lambda: "interrupted" in fake.messages[mid]["content"])
        assert fake.messages[mid]["content"].startswith("half an ans")
        assert services.store.get_message(reply_id).status == "interrupted"
        assert not provider.requests
        assert not _surfaces(services)
    finally:
        await stop_bot(task, stop)
