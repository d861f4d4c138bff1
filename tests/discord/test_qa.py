"""Q&A mode over the fake Discord: statuses, visibility, reactions, streaming, splitting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mschat.core.errors import ProviderError
from mschat.core.events import WaitingForTurn
from mschat.discord.split import open_fence, split_message
from mschat.providers.base import ChatRequest, FinishChunk, ProviderEvent, TextChunk
from tests.conftest import eventually
from tests.discord.conftest import Harness, interaction_rows
from tests.fakes.fake_discord import BOT_ID, OTHER_CHANNEL_ID, QA_CHANNEL_ID

WRITING, DONE, FAILED, WAITING = "✍🏻", "👌", "❌", "⏳"


async def answered(h: Harness, message: dict, emoji: str = DONE) -> list[dict]:
    """Wait for the final reaction on ``message``; return the bot's replies to it."""
    mid = int(message["id"])
    await h.fake.wait_until(lambda: emoji in h.fake.reactions.get(mid, []))
    assert WRITING not in h.fake.reactions[mid]
    return h.fake.replies_to(mid)


async def sessions_of(h: Harness, discord_id: int) -> list:
    user = await h.discord_user(discord_id)
    return await h.manager.list_sessions(user, include_public=False)


async def test_disabled_user_is_not_answered_and_a_mention_gets_one_hint(h: Harness) -> None:
    first = await h.fake.send_message(1, "anyone there?")
    hinted = await h.fake.send_message(1, "hello?", mention_bot=True)
    await h.fake.wait_until(lambda: h.fake.replies_to(hinted["id"]))
    [hint] = h.fake.replies_to(hinted["id"])
    assert "disabled" in hint["content"] and "/user" in hint["content"]
    again = await h.fake.send_message(1, "still there?", mention_bot=True)
    # a later answered message proves the bot has processed "again" (events are in order)
    await h.discord_user(2, status="new")
    probe = await h.fake.send_message(2, "probe")
    await answered(h, probe)
    assert not h.fake.replies_to(first["id"]) and not h.fake.replies_to(again["id"])
    assert not h.fake.reactions.get(int(first["id"]))
    assert await sessions_of(h, 1) == []
    assert not h.provider.requests[:-1]


async def test_new_without_attach_starts_a_session_per_message(h: Harness) -> None:
    await h.discord_user(1, status="new")
    for text in ("What is SQLite?", "What is WAL mode?"):
        msg = await h.fake.send_message(1, text)
        [reply] = await answered(h, msg)
        assert reply["content"] == f"Echo: {text}"
    sessions = await sessions_of(h, 1)
    assert len(sessions) == 2 and all(s.public for s in sessions)
    user = await h.discord_user(1)
    assert user.status == "new" and user.current_session_id is None


async def test_new_with_attach_then_active_continues_the_session(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    first = await h.fake.send_message(1, "Tell me about ducks")
    await answered(h, first)
    user = await h.discord_user(1)
    assert user.status == "active" and user.current_session_id is not None
    second = await h.fake.send_message(1, "And geese?")
    await answered(h, second)
    [session] = await sessions_of(h, 1)
    assert session.id == user.current_session_id and session.message_count == 4
    # the provider saw the history of the first question
    assert [m.content for m in h.provider.requests[-1].messages if m.role == "user"] == [
        "Tell me about ducks",
        "And geese?",
    ]


async def test_dm_sessions_are_private_channel_sessions_public(h: Harness) -> None:
    await h.discord_user(1, status="new")
    dm = await h.fake.send_message(1, "secret question", dm=True)
    [reply] = await answered(h, dm)
    assert reply["channel_id"] == str(h.fake.dm_channel_id(1))
    public = await h.fake.send_message(1, "public question")
    await answered(h, public)
    by_title = {s.title: s for s in await sessions_of(h, 1)}
    assert not by_title["secret question"].public
    assert by_title["public question"].public
    assert by_title["secret question"].origin == "discord_dm"


async def test_only_eligible_messages_are_answered(h: Harness) -> None:
    await h.discord_user(1, status="new")
    h.fake.user(7, "otherbot", bot=True)
    ignored = await h.fake.send_message(1, "chatting elsewhere", channel_id=OTHER_CHANNEL_ID)
    from_bot = await h.fake.send_message(7, "I am a bot", bot=True)
    mention = await h.fake.send_message(1, "help me", channel_id=OTHER_CHANNEL_ID, mention_bot=True)
    [reply] = await answered(h, mention)
    assert reply["content"] == "Echo: help me"  # the mention is stripped
    assert not h.fake.replies_to(ignored["id"]) and not h.fake.replies_to(from_bot["id"])
    assert len(h.provider.requests) == 1


async def test_star_answers_every_channel(h: Harness) -> None:
    h.bot.qa_channels = "*"
    await h.discord_user(1, status="new")
    msg = await h.fake.send_message(1, "anywhere", channel_id=OTHER_CHANNEL_ID)
    assert (await answered(h, msg))[0]["content"] == "Echo: anywhere"


async def test_reactions_go_writing_then_done(h: Harness) -> None:
    await h.discord_user(1, status="new")
    gate = asyncio.Event()
    h.provider.push(chunks=["first", " second"], gate=gate)
    msg = await h.fake.send_message(1, "slow one")
    mid = int(msg["id"])
    await h.fake.wait_until(lambda: h.fake.replies_to(mid))
    assert h.fake.reactions[mid] == [WRITING]
    assert h.fake.replies_to(mid)[0]["content"] == "first"
    gate.set()
    [reply] = await answered(h, msg)
    assert reply["content"] == "first second"
    assert h.fake.reactions[mid] == [DONE]
    # the reply's Discord id is stored with the reply
    _session, message = await h.manager.find_by_ref(await h.discord_user(1), reply["id"])
    assert message.role == "assistant" and message.content == "first second"


async def test_provider_failure_gets_a_cross_and_a_short_error(h: Harness) -> None:
    await h.discord_user(1, status="new")
    h.provider.push(chunks=["partial answer"], error=ProviderError("upstream exploded (500)"))
    msg = await h.fake.send_message(1, "will fail")
    replies = await answered(h, msg, FAILED)
    assert replies[0]["content"] == "partial answer"
    assert replies[-1]["content"].startswith("❌") and "upstream exploded" in replies[-1]["content"]
    assert len(replies[-1]["content"]) < 400
    [session] = await sessions_of(h, 1)
    messages = await h.manager.messages(await h.discord_user(1), session.id)
    assert [m.status for m in messages] == ["complete", "failed"]
    # the session stays usable
    again = await h.fake.send_message(1, "again")
    await answered(h, again)


async def test_unconfigured_model_is_reported(h: Harness) -> None:
    await h.discord_user(1, status="new")
    user = await h.discord_user(1)
    await h.manager._run(h.manager.store.update_user, user.id, model="nowhere/none")
    msg = await h.fake.send_message(1, "hello")
    [reply] = await answered(h, msg, FAILED)
    assert "nowhere" in reply["content"]


class SlowProvider:
    """Streams ``count`` chunks ``delay`` seconds apart."""

    def __init__(self, count: int, delay: float) -> None:
        self.count, self.delay = count, delay
        self.context_window = 4096

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        for i in range(self.count):
            await asyncio.sleep(self.delay)
            yield TextChunk(f"w{i} ")
        yield FinishChunk("stop")

    def count_tokens(self, model: str, messages: list) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_streaming_edits_are_spaced_by_the_edit_interval(h: Harness) -> None:
    h.bot.edit_interval = 0.15
    h.services.registry._instances["fake"] = SlowProvider(40, 0.01)
    await h.discord_user(1, status="new")
    msg = await h.fake.send_message(1, "stream please")
    [reply] = await answered(h, msg)
    assert reply["content"] == " ".join(f"w{i}" for i in range(40))
    path = f"/channels/{QA_CHANNEL_ID}/messages/{reply['id']}"
    edits = [c.at for c in h.fake.calls if c.method == "PATCH" and c.path == path]
    assert 1 <= len(edits) < 40  # far fewer edits than chunks
    gaps = [b - a for a, b in itertools.pairwise(edits)]
    assert all(gap >= 0.15 * 0.9 for gap in gaps), gaps


async def test_long_answer_with_code_is_split_at_boundaries(h: Harness) -> None:
    intro = "Here is the program.\n\n" + ("Some explanation. " * 60).strip() + "\n\n"
    code = "\n".join(f"    total += compute({i})  # step {i:04d}" for i in range(110))
    text = intro + "```python\ndef main():\n" + code + "\n```\n\nThat is all." + " Bye." * 20
    assert len(text) > 5000
    chunks = [text[i : i + 97] for i in range(0, len(text), 97)]
    h.provider.push(chunks=chunks)
    await h.discord_user(1, status="new")
    msg = await h.fake.send_message(1, "write a long program")
    parts = [r["content"] for r in await answered(h, msg)]
    assert len(parts) >= 3 and parts == split_message(text)
    for part in parts:
        assert len(part) <= 2000 and open_fence(part) is None
    # the first part ends at the paragraph break; the code block is cut inside and reopened
    assert parts[0].endswith("Some explanation.")
    inside = [
        i
        for i in range(len(parts) - 1)
        if "compute(" in parts[i].split("\n")[-2] and parts[i].endswith("\n```")
    ]
    assert inside and all(parts[i + 1].startswith("```python\n    total") for i in inside)
    code_lines = [ln for p in parts for ln in p.split("\n") if "compute(" in ln]
    assert code_lines == code.split("\n")
    assert parts[0].startswith("Here is the program.") and parts[-1].endswith("Bye.")
    # "Session info" works on a later part too (it replies to the same question)
    interaction = await h.fake.message_command(1, "Session info", h.fake.replies_to(msg["id"])[2])
    await h.fake.wait_until(lambda: "Session #" in _original(h, interaction))


def _original(h: Harness, interaction: dict) -> str:
    messages = h.fake.interaction_messages(interaction)
    return messages[0]["content"] if messages else ""


async def test_model_output_pings_no_one(h: Harness) -> None:
    h.provider.push(chunks=["Hey @everyone and @here, ", f"<@{BOT_ID}> <@12345> <@&999>!"])
    await h.discord_user(1, status="new")
    msg = await h.fake.send_message(1, "ping people")
    [reply] = await answered(h, msg)
    assert "@everyone" in reply["content"]
    sends = [
        c
        for c in h.fake.calls
        if c.method in ("POST", "PATCH") and "/messages" in c.path and "content" in c.body
    ]
    assert sends
    for call in sends:
        mentions = call.body["allowed_mentions"]
        assert mentions["parse"] == [] and not mentions.get("users") and not mentions.get("roles")
        assert mentions.get("replied_user") is False


async def test_several_users_in_one_public_session_are_served_in_order(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    first = await h.fake.send_message(1, "start a shared session")
    await answered(h, first)
    owner = await h.discord_user(1)
    await h.discord_user(2, status="active")
    await h.discord_user(3, status="active")
    for uid in (2, 3):
        user = await h.discord_user(uid)
        await h.manager.switch_session(user, owner.current_session_id)
    gate = asyncio.Event()
    h.provider.push(chunks=["answer A"], gate=gate)
    h.provider.push(chunks=["answer B"])
    h.provider.push(chunks=["answer C"])
    a = await h.fake.send_message(1, "question A")
    await h.fake.wait_until(lambda: h.fake.replies_to(a["id"]))
    b = await h.fake.send_message(2, "question B")
    c = await h.fake.send_message(3, "question C")
    gate.set()
    for msg, answer in ((a, "answer A"), (b, "answer B"), (c, "answer C")):
        [reply] = await answered(h, msg)
        assert reply["content"] == answer
    messages = await h.manager.messages(owner, owner.current_session_id)
    assert [m.content for m in messages][2:] == [
        "question A",
        "answer A",
        "question B",
        "answer B",
        "question C",
        "answer C",
    ]
    assert [m.author_name for m in messages if m.role == "user"][1:] == ["user1", "user2", "user3"]


async def test_qa_messages_are_logged(h: Harness) -> None:
    await h.discord_user(1, status="new")
    msg = await h.fake.send_message(1, "log me")
    await answered(h, msg)

    async def logged() -> list:
        rows = await interaction_rows(h, "kind = 'message'")
        return rows if rows and rows[0]["status"] == "ok" else []

    [row] = await eventually(logged)
    assert row["source"] == "discord" and row["name"] == "qa"


async def test_a_session_made_private_is_not_used_by_others(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    await answered(h, await h.fake.send_message(1, "our shared session"))
    owner = await h.discord_user(1)
    shared = owner.current_session_id
    other = await h.discord_user(2, status="active")
    await h.manager.switch_session(other, shared)
    await answered(h, await h.fake.send_message(2, "joining in"))
    await h.manager.set_session_public(owner, shared, False)
    msg = await h.fake.send_message(2, "still here?")
    [reply] = await answered(h, msg)
    assert reply["content"].startswith("Echo: still here?")
    assert f"Session #{shared} is private to its creator now" in reply["content"]
    # nothing was added to the private session; the question went to a new one
    assert (await h.manager.get_session(owner, shared)).message_count == 4
    other = await h.discord_user(2)
    assert other.current_session_id not in (None, shared)


async def test_history_trimming_is_mentioned(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True, max_tokens=3000)
    for i in range(3):
        h.provider.push(chunks=[f"answer {i} " + "x" * 2000])
        await answered(h, await h.fake.send_message(1, f"question {i}"))
    h.provider.push(chunks=["short"])
    [reply] = await answered(h, await h.fake.send_message(1, "last one"))
    assert "left out to fit the model's context window" in reply["content"]


# ---- who may chat: the core decides, the bot translates its refusals -------------------


async def probe(h: Harness, discord_id: int = 99) -> None:
    """Send an answered message: every event dispatched before it has been handled."""
    await h.discord_user(discord_id, status="new")
    await answered(h, await h.fake.send_message(discord_id, "probe"))


async def test_an_ignored_user_gets_no_reaction_no_reply_and_nothing_stored(h: Harness) -> None:
    admin = await h.manager.local_user()
    user = await h.discord_user(1, status="new")
    await h.manager.update_user(admin, user.id, ignored=True)
    sent = [
        await h.fake.send_message(1, "in the Q&A channel"),
        await h.fake.send_message(1, "mentioning", channel_id=OTHER_CHANNEL_ID, mention_bot=True),
        await h.fake.send_message(1, "in a DM", dm=True),
    ]
    await probe(h)
    for msg in sent:
        assert not h.fake.replies_to(msg["id"]) and not h.fake.reactions.get(int(msg["id"]))
    assert await sessions_of(h, 1) == []
    # only the mention is logged, as refused, without its text
    [row] = await interaction_rows(h, f"user_id = {user.id}")
    assert (row["kind"], row["status"]) == ("mention", "refused")
    assert "mentioning" not in row["payload"]
    assert len(h.provider.requests) == 1  # the probe's


async def test_an_ignored_and_disabled_user_gets_no_hint(h: Harness) -> None:
    admin = await h.manager.local_user()
    user = await h.discord_user(1)
    await h.manager.update_user(admin, user.id, ignored=True)
    msg = await h.fake.send_message(1, "hello?", mention_bot=True)
    await probe(h)
    assert not h.fake.replies_to(msg["id"])


async def test_a_disabled_user_is_hinted_in_a_dm_and_on_a_bare_mention(h: Harness) -> None:
    dm = await h.fake.send_message(1, "hi", dm=True)
    bare = await h.fake.send_message(2, "", mention_bot=True)
    for msg in (dm, bare):
        await h.fake.wait_until(lambda m=msg: h.fake.replies_to(m["id"]))
        [hint] = h.fake.replies_to(msg["id"])
        assert "disabled" in hint["content"] and "/user" in hint["content"]
        assert not h.fake.reactions.get(int(msg["id"]))
    assert not h.provider.requests


async def test_a_bare_mention_of_a_user_who_may_chat_is_left_alone(h: Harness) -> None:
    await h.discord_user(1, status="new")
    bare = await h.fake.send_message(1, "", mention_bot=True)
    await probe(h)
    assert not h.fake.replies_to(bare["id"]) and not h.fake.reactions.get(int(bare["id"]))
    assert await sessions_of(h, 1) == []


async def test_a_rate_limited_question_gets_a_cross_and_the_cores_message(h: Harness) -> None:
    admin = await h.manager.local_user()
    user = await h.discord_user(1, status="new")
    await h.manager.update_user(admin, user.id, rate_limit=1)
    await answered(h, await h.fake.send_message(1, "first question"))
    second = await h.fake.send_message(1, "one too many")
    [reply] = await answered(h, second, FAILED)
    assert "rate limit reached: 1 question per 6 hours" in reply["content"]
    assert h.fake.reactions[int(second["id"])] == [FAILED]
    [session] = await sessions_of(h, 1)  # nothing of the refused question was stored
    assert session.message_count == 2

    [row] = await eventually(lambda: interaction_rows(h, "kind = 'message' AND status = 'refused'"))
    assert row["error"].startswith("rate_limited: rate limit")


async def test_waiting_for_another_process_shows_an_hourglass_not_an_error(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core yields WaitingForTurn while another process answers in the session."""
    await h.discord_user(1, status="new")
    chat = h.manager.chat
    turn = asyncio.Event()

    async def waiting_chat(user: Any, text: str, **options: Any) -> AsyncIterator[Any]:
        yield WaitingForTurn(session_id=1)
        await turn.wait()
        async for event in chat(user, text, **options):
            yield event

    monkeypatch.setattr(h.manager, "chat", waiting_chat)
    msg = await h.fake.send_message(1, "my turn?")
    mid = int(msg["id"])
    await h.fake.wait_until(lambda: WAITING in h.fake.reactions.get(mid, []))
    assert h.fake.reactions[mid] == [WRITING, WAITING] and not h.fake.replies_to(mid)
    turn.set()
    [reply] = await answered(h, msg)
    assert reply["content"] == "Echo: my turn?"
    assert h.fake.reactions[mid] == [DONE]
