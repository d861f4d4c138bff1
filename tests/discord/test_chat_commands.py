"""/chat, /private and /clear over the fake Discord, in a guild and in a DM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mschat.core.errors import ProviderError
from mschat.core.events import WaitingForTurn
from tests.conftest import eventually
from tests.dbs import sql
from tests.discord.conftest import Harness, interaction_rows, stop_bot
from tests.fakes.fake_discord import (
    BOT_ID,
    EPHEMERAL,
    GUILD_ID,
    QA_CHANNEL_ID,
    walk_components,
)

DEFERRED = 5
LOADING = 1 << 7


def feedback_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for c in walk_components(message) if ":fb:" in c["custom_id"]]


async def final(h: Harness, interaction: dict[str, Any], count: int = 1) -> list[dict[str, Any]]:
    """The interaction's messages once the last of ``count`` carries the feedback buttons."""

    def ready() -> list[dict[str, Any]] | None:
        messages = h.fake.interaction_messages(interaction)
        if len(messages) >= count and feedback_ids(messages[count - 1]):
            return messages
        return None

    return await h.fake.wait_until(ready)  # type: ignore[no-any-return]


async def only_reply(h: Harness, interaction: dict[str, Any]) -> dict[str, Any]:
    """The one message an interaction leaves (once its deferred reply is settled)."""

    def ready() -> dict[str, Any] | None:
        messages = h.fake.interaction_messages(interaction)
        if len(messages) == 1 and not messages[0]["flags"] & LOADING:
            return messages[0]
        return None

    return await h.fake.wait_until(ready)  # type: ignore[no-any-return]


async def row(h: Harness, name: str, status: str) -> dict[str, Any]:
    """The logged interaction once it is finished with ``status``."""
    [found] = await eventually(
        lambda: interaction_rows(h, f"name = '{name}' AND status = '{status}'")
    )
    return found


async def own_sessions(h: Harness, discord_id: int) -> list[Any]:
    user = await h.discord_user(discord_id)
    return await h.manager.list_sessions(user, include_public=False)


def deferral(h: Harness, interaction: dict[str, Any]) -> dict[str, Any]:
    [callback] = h.fake.callbacks(interaction)
    assert callback.body["type"] == DEFERRED
    return callback.body.get("data") or {}


@pytest.mark.parametrize("dm", [False, True], ids=["guild", "dm"])
async def test_chat_answers_in_the_channel_streamed_with_feedback(h: Harness, dm: bool) -> None:
    await h.discord_user(1, status="new")
    gate = asyncio.Event()
    h.provider.push(chunks=["first", " second"], gate=gate)
    interaction = await h.fake.slash(1, "chat", {"prompt": "What is WAL?"}, dm=dm)
    # acknowledged at once, for the whole channel, before the model has answered
    await h.fake.wait_until(lambda: h.fake.callbacks(interaction))
    assert not deferral(h, interaction).get("flags", 0) & EPHEMERAL
    # streamed by edits of the deferred reply: the question quoted, then the text so far
    streaming = await h.fake.wait_until(
        lambda: next(
            (m for m in h.fake.interaction_messages(interaction) if "first" in m["content"]), None
        )
    )
    assert streaming["content"] == "> What is WAL?\n\nfirst" and not feedback_ids(streaming)
    gate.set()
    [answer] = await final(h, interaction)
    assert answer["content"] == "> What is WAL?\n\nfirst second"
    assert answer["id"] == streaming["id"] and not answer["flags"] & EPHEMERAL
    channel = h.fake.dm_channel_id(1) if dm else QA_CHANNEL_ID
    assert answer["channel_id"] == str(channel)
    [session] = await own_sessions(h, 1)
    assert session.public is (not dm) and session.message_count == 2
    messages = await h.manager.messages(await h.discord_user(1), session.id)
    assert [m.content for m in messages] == ["What is WAL?", "first second"]
    assert messages[1].external_ref == answer["id"]  # "Session info" finds it
    buttons = feedback_ids(answer)
    assert len(buttons) == 4
    assert all(b.startswith(f"mschat:message:{messages[1].id}:fb:") for b in buttons)
    logged = await row(h, "chat", "ok")
    assert logged["kind"] == "slash_command"
    assert logged["guild_id"] == (None if dm else str(GUILD_ID))
    assert logged["channel_id"] == str(channel)
    assert "What is WAL" not in str(logged["payload"])  # the question lives in its session


async def test_chat_continues_the_current_session_by_the_status_rules(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    first = await h.fake.slash(1, "chat", {"prompt": "first"})
    await final(h, first)
    second = await h.fake.slash(1, "chat", {"prompt": "second"})
    await final(h, second)
    [session] = await own_sessions(h, 1)
    assert session.message_count == 4
    user = await h.discord_user(1)
    assert user.status == "active" and user.current_session_id == session.id


@pytest.mark.parametrize("dm", [False, True], ids=["guild", "dm"])
async def test_private_is_ephemeral_and_its_session_private(h: Harness, dm: bool) -> None:
    await h.discord_user(1, status="new")
    h.provider.push(chunks=["para one\n\n" + "x" * 1500 + "\n\n", "y" * 1500])
    interaction = await h.fake.slash(1, "private", {"prompt": "secret question"}, dm=dm)
    first, second = await final(h, interaction, 2)
    assert deferral(h, interaction)["flags"] & EPHEMERAL
    # the deferred reply and its followups: only the caller sees them
    assert first["flags"] & EPHEMERAL and second["flags"] & EPHEMERAL
    followups = [c for c in h.fake.calls if c.method == "POST" and c.path.startswith("/webhooks/")]
    assert followups and all(c.body["flags"] & EPHEMERAL for c in followups)
    assert first["content"].startswith("> secret question\n\npara one")
    assert second["content"] == "y" * 1500 and feedback_ids(second) and not feedback_ids(first)
    [session] = await own_sessions(h, 1)
    assert not session.public and session.message_count == 2  # still stored
    # its feedback buttons work like any other's
    clicked = await h.fake.click(1, second, feedback_ids(second)[0])
    await h.fake.wait_until(lambda: len(h.fake.interaction_messages(clicked)) == 1)
    query = "SELECT kind FROM feedback"
    [(kind,)] = await eventually(lambda: h.manager._run(sql, h.manager.store, query))
    assert kind == "good"
    logged = await row(h, "private", "ok")
    assert logged["payload"] and "secret" not in str(logged["payload"])


async def test_private_leaves_a_public_current_session_for_a_private_one(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    await final(h, await h.fake.slash(1, "chat", {"prompt": "in public"}))
    [public] = await own_sessions(h, 1)
    interaction = await h.fake.slash(1, "private", {"prompt": "only me"})
    [answer] = await final(h, interaction)
    assert f"current session #{public.id} is public" in answer["content"]
    sessions = await own_sessions(h, 1)
    assert len(sessions) == 2 and [s.public for s in sessions if s.id != public.id] == [False]
    assert (
        public.message_count == 2
        and (await h.manager.get_session(await h.discord_user(1), public.id)).message_count == 2
    )


@pytest.mark.parametrize("dm", [False, True], ids=["guild", "dm"])
async def test_clear_starts_the_next_question_in_a_fresh_session(h: Harness, dm: bool) -> None:
    await h.discord_user(1, status="new", attach=True)
    await final(h, await h.fake.slash(1, "chat", {"prompt": "before"}, dm=dm))
    [before] = await own_sessions(h, 1)
    assert (await h.discord_user(1)).current_session_id == before.id
    cleared = await h.fake.slash(1, "clear", dm=dm)
    reply = await only_reply(h, cleared)
    assert reply["flags"] & EPHEMERAL and "next question starts a new session" in reply["content"]
    assert deferral(h, cleared)["flags"] & EPHEMERAL
    user = await h.discord_user(1)
    assert user.status == "new" and user.current_session_id is None
    await row(h, "clear", "ok")
    await final(h, await h.fake.slash(1, "chat", {"prompt": "after"}, dm=dm))
    sessions = await own_sessions(h, 1)
    assert len(sessions) == 2 and before.id in {s.id for s in sessions}


@pytest.mark.parametrize("command", ["chat", "private", "clear"])
async def test_a_disabled_user_is_told_privately_how_to_opt_in(h: Harness, command: str) -> None:
    await h.discord_user(1)  # disabled: the default
    options = None if command == "clear" else {"prompt": "hello?"}
    interaction = await h.fake.slash(1, command, options)
    reply = await only_reply(h, interaction)
    assert reply["flags"] & EPHEMERAL and "disabled" in reply["content"]
    if command != "clear":
        assert "/user" in reply["content"]
    # nothing reached the channel: the public "thinking…" of /chat was taken away
    assert [m for m in h.fake.interaction_messages(interaction) if not m["flags"] & EPHEMERAL] == []
    assert await own_sessions(h, 1) == [] and not h.provider.requests
    assert (await h.discord_user(1)).status == "disabled"
    await row(h, command, "refused")


@pytest.mark.parametrize("command", ["chat", "private", "clear"])
async def test_an_ignored_user_is_refused_and_nothing_is_stored(h: Harness, command: str) -> None:
    admin = await h.manager.local_user()
    user = await h.discord_user(1, status="active")
    await h.manager.update_user(admin, user.id, ignored=True)
    options = None if command == "clear" else {"prompt": "let me in"}
    interaction = await h.fake.slash(1, command, options, dm=command == "private")
    reply = await only_reply(h, interaction)
    assert reply["flags"] & EPHEMERAL and "not allowed" in reply["content"]
    assert await own_sessions(h, 1) == [] and not h.provider.requests
    logged = await row(h, command, "refused")
    assert "let me in" not in str(logged["payload"])


@pytest.mark.parametrize("dm", [False, True], ids=["guild", "dm"])
async def test_a_rate_limited_user_gets_the_cores_message_privately(h: Harness, dm: bool) -> None:
    admin = await h.manager.local_user()
    user = await h.discord_user(1, status="new")
    await h.manager.update_user(admin, user.id, rate_limit=1)
    await final(h, await h.fake.slash(1, "chat", {"prompt": "first"}, dm=dm))
    interaction = await h.fake.slash(1, "chat", {"prompt": "one too many"}, dm=dm)
    reply = await only_reply(h, interaction)
    assert reply["flags"] & EPHEMERAL
    assert "rate limit reached: 1 question per 6 hours" in reply["content"]
    [session] = await own_sessions(h, 1)
    assert session.message_count == 2  # nothing of the refused question was stored
    logged = await row(h, "chat", "refused")
    assert "rate limit" in logged["error"]


async def test_a_failed_answer_keeps_its_text_and_says_why(h: Harness) -> None:
    await h.discord_user(1, status="new")
    h.provider.push(chunks=["partial answer"], error=ProviderError("upstream exploded (500)"))
    interaction = await h.fake.slash(1, "chat", {"prompt": "fail please"})
    await h.fake.wait_until(lambda: len(h.fake.interaction_messages(interaction)) == 2)
    answer, note = h.fake.interaction_messages(interaction)
    assert "partial answer" in answer["content"] and not feedback_ids(answer)
    assert "upstream exploded" in note["content"]
    await row(h, "chat", "error")


async def test_the_answer_pings_no_one(h: Harness) -> None:
    await h.discord_user(1, status="new")
    h.provider.push(chunks=["Hey @everyone, ", f"<@{BOT_ID}> <@12345> <@&999>!"])
    interaction = await h.fake.slash(1, "chat", {"prompt": "ping @everyone"})
    [answer] = await final(h, interaction)
    assert "@everyone" in answer["content"]
    calls = [
        c
        for c in h.fake.calls
        if c.path.startswith("/webhooks/") and c.body and "content" in c.body
    ]
    assert calls
    for call in calls:
        assert call.body["allowed_mentions"]["parse"] == []


async def test_shutdown_interrupts_an_answer_and_says_so(h: Harness) -> None:
    await h.discord_user(1, status="new")
    h.provider.push(chunks=["half of it"], gate=asyncio.Event())  # never released
    interaction = await h.fake.slash(1, "chat", {"prompt": "a long one"})
    await h.fake.wait_until(
        lambda: any("half of it" in m["content"] for m in h.fake.interaction_messages(interaction))
    )
    await stop_bot(h.task, h.stop)
    [answer] = h.fake.interaction_messages(interaction)
    assert answer["content"].startswith("> a long one\n\nhalf of it")
    assert "interrupted" in answer["content"] and not feedback_ids(answer)
    await row(h, "chat", "interrupted")


async def test_a_question_during_shutdown_is_refused_privately(h: Harness) -> None:
    await h.discord_user(1, status="new")
    h.bot.accepting = False  # what shutdown does first
    interaction = await h.fake.slash(1, "chat", {"prompt": "too late"})
    await h.fake.wait_until(lambda: h.fake.interaction_messages(interaction))
    [reply] = h.fake.interaction_messages(interaction)
    assert reply["flags"] & EPHEMERAL and "ask again" in reply["content"]
    assert await own_sessions(h, 1) == []


async def test_waiting_for_another_process_is_shown_until_the_answer_comes(
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
    interaction = await h.fake.slash(1, "chat", {"prompt": "my turn?"})
    notice = await h.fake.wait_until(
        lambda: next(
            (m for m in h.fake.interaction_messages(interaction) if "⏳" in m["content"]), None
        )
    )
    assert not feedback_ids(notice)
    turn.set()
    [answer] = await final(h, interaction)
    assert answer["id"] == notice["id"] and answer["content"] == "> my turn?\n\nEcho: my turn?"


async def test_session_info_on_a_chat_answer_shows_its_session(h: Harness) -> None:
    await h.discord_user(1, status="new")
    [answer] = await final(h, await h.fake.slash(1, "chat", {"prompt": "which session?"}))
    [session] = await own_sessions(h, 1)
    info = await h.fake.message_command(1, "Session info", answer)
    panel = await only_reply(h, info)
    assert panel["flags"] & EPHEMERAL and f"Session #{session.id}" in panel["content"]
