"""Discord's rate limits: the fake enforces them; answers never wait for reactions."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import aiohttp
import discord
import pytest

from mschat.discord.lanes import (
    ANSWER,
    DONE,
    FAILED,
    REACTION_SLOTS,
    STREAMING,
    WAITING,
    WRITING,
    Lane,
    Marks,
)
from tests.discord.conftest import Harness
from tests.fakes.fake_discord import (
    MESSAGES,
    QA_CHANNEL_ID,
    REACTIONS,
    FakeDiscord,
    walk_components,
)


async def post(
    session: aiohttp.ClientSession, fake: FakeDiscord, path: str, method: str = "POST"
) -> aiohttp.ClientResponse:
    async with session.request(
        method,
        fake.api_base + path,
        json={"content": "x"},
        headers={"Authorization": f"Bot {fake.token}"},
    ) as response:
        await response.read()
        return response


async def test_the_fake_announces_buckets_and_refuses_over_the_limit(fake: FakeDiscord) -> None:
    messages = f"/channels/{QA_CHANNEL_ID}/messages"
    fake.limit_rates(False)
    async with aiohttp.ClientSession() as session:
        plain = await post(session, fake, messages)
        assert plain.status == 200 and "X-RateLimit-Limit" not in plain.headers
        fake.limit_rates(True)
        seen = [await post(session, fake, messages) for _ in range(MESSAGES.limit)]
        assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["4", "3", "2", "1", "0"]
        assert {r.headers["X-RateLimit-Bucket"] for r in seen} == {MESSAGES.hash}
        assert all(0 < float(r.headers["X-RateLimit-Reset-After"]) <= 5 for r in seen)
        # an edit counts in the same bucket: the sixth call is refused
        message_id = fake.bot_messages()[0]["id"]
        async with session.patch(
            f"{fake.api_base}{messages}/{message_id}",
            json={"content": "y"},
            headers={"Authorization": f"Bot {fake.token}"},
        ) as refused:
            body = await refused.json()
        assert refused.status == 429 and body["global"] is False
        assert 0 < body["retry_after"] <= 5
        assert refused.headers["Via"] and refused.headers["X-RateLimit-Scope"] == "user"
        # another channel has buckets of its own; reactions have theirs, one per 0.25 s
        other = await post(session, fake, "/channels/42/messages")
        assert other.headers["X-RateLimit-Remaining"] == "4"
        reaction = f"{messages}/{message_id}/reactions/%F0%9F%91%8C/@me"
        first = await post(session, fake, reaction, "PUT")
        second = await post(session, fake, reaction, "PUT")
        assert first.status == 204 and first.headers["X-RateLimit-Bucket"] == REACTIONS.hash
        assert second.status == 429
        fake.limit_rates(False)
        assert (await post(session, fake, messages)).status == 200
    assert len(fake.throttled) == 2


async def test_discord_py_waits_out_the_announced_limits(h: Harness) -> None:
    h.fake.limit_rates(True, scale=0.1)
    channel = h.bot.get_channel(QA_CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    sent = await asyncio.gather(*(channel.send(f"n{i}") for i in range(12)))
    assert sorted(m.content for m in sent) == sorted(f"n{i}" for i in range(12))
    await asyncio.gather(*(m.add_reaction(DONE) for m in sent[:3]))
    assert all(h.fake.reactions[m.id] == [DONE] for m in sent[:3])


# ---- the lanes -----------------------------------------------------------------------


async def test_a_lane_sends_answers_before_streaming_edits_and_builds_each_call_when_sent() -> None:
    lane = Lane(slots=1)
    order: list[str] = []
    release = asyncio.Event()
    text = {"value": "old"}

    async def blocker() -> None:
        await release.wait()
        order.append("first")

    async def record(name: str) -> None:
        order.append(f"{name}:{text['value']}")

    running = asyncio.create_task(lane.run(ANSWER, blocker))
    await asyncio.sleep(0)
    edit = asyncio.create_task(lane.run(STREAMING, lambda: record("edit")))
    answer = asyncio.create_task(lane.run(ANSWER, lambda: record("answer")))
    dropped = asyncio.create_task(lane.run(STREAMING, lambda: record("dropped")))
    await asyncio.sleep(0)
    dropped.cancel()  # cancelled while it waits: never sent
    text["value"] = "new"
    release.set()
    await asyncio.gather(running, edit, answer)
    assert order == ["first", "answer:new", "edit:new"]
    assert dropped.cancelled() and lane.idle


class FakeMessage:
    """What a reaction lane needs of a question."""

    def __init__(self, message_id: int) -> None:
        self.id = message_id


def marks(message_id: int = 1) -> Marks:
    return Marks(FakeMessage(message_id), FakeMessage(0))  # type: ignore[arg-type]


def calls(mark: Marks, pressure: bool) -> list[tuple[str, bool]]:
    made = []
    while (call := mark.next_call(pressure)) is not None:
        made.append(call)
        mark.did(*call)
    return made


def test_marks_swap_when_calm_and_only_finish_under_pressure() -> None:
    calm = marks()
    assert calls(calm, pressure=False) == [(WRITING, True)]
    calm.waiting = True
    assert calls(calm, pressure=False) == [(WAITING, True)]
    calm.final, calm.working, calm.waiting = DONE, False, False
    assert calls(calm, pressure=False) == [(WAITING, False), (WRITING, False), (DONE, True)]

    busy = marks()
    assert calls(busy, pressure=True) == []  # no ✍🏻 in a crowded channel, not even later
    assert calls(busy, pressure=False) == []
    busy.final, busy.working = FAILED, False
    assert calls(busy, pressure=True) == [(FAILED, True)]

    placed = marks()
    calls(placed, pressure=False)
    placed.final, placed.working = DONE, False
    assert calls(placed, pressure=True) == [(DONE, True)]  # the removal of ✍🏻 is skipped
    assert placed.placed == [WRITING, DONE]


# ---- the bot under Discord's limits ------------------------------------------------


def final_answer(h: Harness, message: dict[str, Any]) -> dict[str, Any] | None:
    """The bot's answer to ``message`` once it is complete (its feedback buttons are on)."""
    replies = h.fake.replies_to(message["id"])
    if replies and any(
        c.get("custom_id", "").endswith(":fb:good") for c in walk_components(replies[-1])
    ):
        return replies[-1]
    return None


async def test_answers_never_wait_for_a_reaction(h: Harness) -> None:
    """Reactions stuck at Discord: every question is still answered, in full, with its buttons."""
    await h.discord_user(1, status="new")
    release = h.fake.hold("PUT", "/reactions/")
    questions = [await h.fake.send_message(1, f"question {i}") for i in range(6)]
    await h.fake.wait_until(lambda: all(final_answer(h, q) for q in questions))
    for q in questions:
        assert final_answer(h, q)["content"] == f"Echo: {q['content']}"  # type: ignore[index]
    reacting = h.fake.calls_to("PUT", "/reactions/")
    # the lane's few calls are held; no other was even tried
    assert 0 < len(reacting) <= REACTION_SLOTS and all(c.status == 0 for c in reacting)
    release.set()
    await h.fake.wait_until(
        lambda: all(DONE in h.fake.reactions.get(int(q["id"]), []) for q in questions)
    )
    # six questions queued behind the held ✍🏻s: most get their 👌 alone (not three calls each)
    assert len(h.fake.calls_to("PUT", "/reactions/")) + len(
        h.fake.calls_to("DELETE", "/reactions/")
    ) < 2 * len(questions)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_twenty_messages_a_second_in_one_channel_with_discords_limits(h: Harness) -> None:
    h.fake.limit_rates(True)
    count = 20
    for uid in range(1, count + 1):
        await h.discord_user(uid, status="new")
    questions = []
    for i in range(count):
        questions.append(await h.fake.send_message(i + 1, f"busy question {i}"))
        await asyncio.sleep(1 / count)  # the load's pace: 20 messages a second
    done = lambda: all(  # noqa: E731
        final_answer(h, q) and DONE in h.fake.reactions.get(int(q["id"]), []) for q in questions
    )
    await h.fake.wait_until(done, timeout=100)
    answers = [final_answer(h, q) for q in questions]
    assert [a["content"] for a in answers] == [f"Echo: busy question {i}" for i in range(count)]  # type: ignore[index]
    assert [len(h.fake.replies_to(q["id"])) for q in questions] == [1] * count
    # no answer was refused by Discord; streaming edits and the ✍🏻/👌 swaps were coalesced
    message_calls = [c for c in h.fake.calls if c.bucket and c.bucket.startswith("messages")]
    assert not [c for c in message_calls if c.status == 429]
    assert len(message_calls) < 2 * count  # sent and edited, it would be two calls each
    reaction_calls = [c for c in h.fake.calls if c.bucket and c.bucket.startswith("reactions")]
    assert len(reaction_calls) < 2 * count  # the old way made three per question
    # the answers did not wait for their ✍🏻: most questions never got one, all got answered
    writing = {
        c.path.split("/")[4]
        for c in reaction_calls
        if c.method == "PUT" and unquote(c.path).endswith(WRITING + "/@me")
    }
    assert 0 < len(writing) < count
