"""The fair queue on Discord: the place in line in the waiting message, and the refusals."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.discord.conftest import Harness

WRITING, DONE, FAILED = "✍🏻", "👌", "❌"


def one_slot(h: Harness, **queue: Any) -> None:
    """One answer at a time; ``queue`` settings as live ones."""
    h.services.config.providers["fake"].max_concurrency = 1
    for key, value in queue.items():
        h.services.live.set(f"queue.{key}", value, "tester")


async def hold_the_slot(h: Harness) -> asyncio.Event:
    """User 9's answer holds the only slot until the returned gate is set."""
    await h.discord_user(9, status="new")
    gate = asyncio.Event()
    h.provider.push(chunks=["held", " answer"], gate=gate)
    held = await h.fake.send_message(9, "hold it")
    await h.fake.wait_until(lambda: h.fake.replies_to(held["id"]))
    return gate


def only_reply(h: Harness, question: dict[str, Any]) -> dict[str, Any] | None:
    replies = h.fake.replies_to(question["id"])
    return replies[0] if len(replies) == 1 else None


async def stored(h: Harness, discord_id: int) -> list[tuple[str, str, str | None]]:
    """(role, status, error) of the messages of a member's only session."""
    [session] = await h.manager.list_sessions(
        await h.discord_user(discord_id), include_public=False
    )
    return [(m.role, m.status, m.error) for m in h.manager.store.messages(session.id)]


async def test_the_waiting_reply_says_the_place_in_line_and_becomes_the_answer(
    h: Harness,
) -> None:
    one_slot(h)
    gate = await hold_the_slot(h)
    await h.discord_user(1, status="new")
    await h.discord_user(2, status="new")
    first = await h.fake.send_message(1, "one")
    line = await h.fake.wait_until(
        lambda: (
            (only_reply(h, first) or {}).get("content") == "⏳ Waiting in line: yours is next…"
            and only_reply(h, first)
        )
    )
    second = await h.fake.send_message(2, "two")
    await h.fake.wait_until(
        lambda: (
            (only_reply(h, second) or {}).get("content") == "⏳ Waiting in line: 1 ahead of you…"
        )
    )
    gate.set()
    # the second is edited as the line moves, then both become their answers
    for question in (first, second):
        await h.fake.wait_until(lambda q=question: DONE in h.fake.reactions.get(int(q["id"]), []))
    assert only_reply(h, first) == h.fake.messages[int(line["id"])]
    assert line["content"] == "Echo: one" and line["components"]
    assert (only_reply(h, second) or {})["content"] == "Echo: two"


async def test_chat_in_line_edits_its_deferred_reply(h: Harness) -> None:
    one_slot(h)
    gate = await hold_the_slot(h)
    await h.discord_user(1, status="new")
    interaction = await h.fake.slash(1, "chat", {"prompt": "my turn?"})
    await h.fake.wait_until(
        lambda: (
            [m["content"] for m in h.fake.interaction_messages(interaction)]
            == ["⏳ Waiting in line: yours is next…"]
        )
    )
    gate.set()
    await h.fake.wait_until(
        lambda: (
            [m["content"] for m in h.fake.interaction_messages(interaction)]
            == ["> my turn?\n\nEcho: my turn?"]
        )
    )


async def test_a_full_queue_refuses_in_one_line_and_the_question_is_stored(h: Harness) -> None:
    one_slot(h, size=1)
    gate = await hold_the_slot(h)
    await h.discord_user(1, status="new")
    await h.discord_user(2, status="new")
    waiting = await h.fake.send_message(1, "waits")
    await h.fake.wait_until(lambda: only_reply(h, waiting))
    full = await h.fake.send_message(2, "no room")
    await h.fake.wait_until(lambda: FAILED in h.fake.reactions.get(int(full["id"]), []))
    [refusal] = h.fake.replies_to(full["id"])
    assert refusal["content"].startswith("⚠️") and "queue is full" in refusal["content"]
    assert "\n" not in refusal["content"]
    [question, reply] = await stored(h, 2)
    assert question[:2] == ("user", "complete")
    assert reply[1] == "failed" and "queue is full" in (reply[2] or "")
    gate.set()
    await h.fake.wait_until(lambda: DONE in h.fake.reactions.get(int(waiting["id"]), []))


async def test_a_question_waiting_too_long_is_refused_in_its_waiting_reply(h: Harness) -> None:
    one_slot(h, max_age=0.3)
    gate = await hold_the_slot(h)
    await h.discord_user(1, status="new")
    late = await h.fake.send_message(1, "too late")
    await h.fake.wait_until(lambda: FAILED in h.fake.reactions.get(int(late["id"]), []))
    # the message that said its place in line says why it is not answered
    [refusal] = h.fake.replies_to(late["id"])
    assert refusal["content"].startswith("⚠️") and "waited 0.3 s in the queue" in refusal["content"]
    [_, reply] = await stored(h, 1)
    assert reply[1] == "failed" and "waited" in (reply[2] or "")
    gate.set()


async def test_paused_rejects_or_holds_until_resumed(h: Harness) -> None:
    live = h.services.live
    await h.discord_user(1, status="new")
    await h.discord_user(2, status="new")
    live.set("queue.paused", True, "tester")
    rejected = await h.fake.send_message(1, "paused?")
    await h.fake.wait_until(lambda: FAILED in h.fake.reactions.get(int(rejected["id"]), []))
    [refusal] = h.fake.replies_to(rejected["id"])
    assert "paused" in refusal["content"] and "\n" not in refusal["content"]
    [_, reply] = await stored(h, 1)
    assert reply[1] == "failed" and "paused" in (reply[2] or "")
    live.set("queue.when_paused", "hold", "tester")
    held = await h.fake.send_message(2, "held")
    await h.fake.wait_until(
        lambda: (only_reply(h, held) or {}).get("content") == "⏳ Waiting in line: yours is next…"
    )
    assert not h.provider.requests  # nothing is asked while paused
    live.unset("queue.paused")  # what `mschat ops resume` does
    await h.fake.wait_until(lambda: DONE in h.fake.reactions.get(int(held["id"]), []))
    assert (only_reply(h, held) or {})["content"] == "Echo: held"
