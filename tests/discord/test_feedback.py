"""Feedback buttons under answers: counts that rise as members click (read from the
database), once per member and kind, every "Other" text, and feedback switched off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from mschat.discord.components import feedback_view
from mschat.discord.feedback import OFF
from tests.discord.conftest import Harness, start_bot, stop_bot
from tests.discord.test_commands import chat, label, response
from tests.fakes.fake_discord import EPHEMERAL, FakeDiscord, walk_components
from tests.fakes.scripted_provider import ScriptedProvider

pytestmark = pytest.mark.backends


async def answered(h: Harness) -> tuple[dict[str, Any], int]:
    """A member's question answered in the Q&A channel: the answer and its reply id."""
    await h.discord_user(1, status="new")
    reply = await chat(h, 1, "rate me")
    _, stored = await h.manager.find_by_ref(await h.discord_user(1), reply["id"])
    return h.fake.messages[int(reply["id"])], stored.id


async def thanks(h: Harness, interaction: dict[str, Any]) -> str:
    """The ephemeral line a click or a submission got."""
    message = await response(h, interaction)
    assert message["flags"] & EPHEMERAL
    return str(message["content"])


async def shows(h: Harness, answer: dict[str, Any], custom_id: str, text: str) -> None:
    """Wait until the answer's button ``custom_id`` reads ``text``."""
    await h.fake.wait_until(lambda: label(h.fake.messages[int(answer["id"])], custom_id) == text)


async def test_counts_rise_once_per_member_and_kind(h: Harness) -> None:
    answer, rid = await answered(h)
    good, outdated = f"mschat:message:{rid}:fb:good", f"mschat:message:{rid}:fb:outdated"
    assert label(answer, good) == "👍 Good" and label(answer, outdated) == "Outdated"

    click = await h.fake.click(2, answer, good)
    assert await thanks(h, click) == "Thanks, your feedback (good) was recorded."
    # acknowledged as an update of the answer itself, which now shows the count
    assert [c.body["type"] for c in h.fake.callbacks(click)] == [6]
    await shows(h, answer, good, "👍 Good · 1")

    await thanks(h, await h.fake.click(3, answer, good))
    await shows(h, answer, good, "👍 Good · 2")
    # the same member on the same button again: told so, not counted twice
    again = await h.fake.click(2, answer, good)
    assert "already marked this answer as good" in await thanks(h, again)
    # another kind by the same member is a vote of its own
    await thanks(h, await h.fake.click(2, answer, outdated))
    await shows(h, answer, outdated, "Outdated · 1")
    message = h.fake.messages[int(answer["id"])]
    assert label(message, good) == "👍 Good · 2"
    assert message["content"] == answer["content"]  # only the buttons changed
    assert await h.manager.feedback_counts(rid) == {"good": 2, "outdated": 1}


async def test_every_other_text_counts(h: Harness) -> None:
    answer, rid = await answered(h)
    other = f"mschat:message:{rid}:fb:other"
    for member, text, count in ((2, "too short", 1), (2, "cite a source", 2), (3, "old", 3)):
        click = await h.fake.click(member, answer, other)
        await h.fake.wait_until(lambda click=click: h.fake.callbacks(click))
        assert h.fake.callbacks(click)[0].body["type"] == 9  # a modal asks for the text
        submitted = await h.fake.submit_modal(
            member, f"mschat:fbtext:{rid}", {"text": text}, message=answer
        )
        assert await thanks(h, submitted) == "Thanks, your feedback was recorded."
        await shows(h, answer, other, f"Other… · {count}")
    admin = await h.manager.local_user()
    [listed] = await h.manager.list_feedback(admin)
    assert [(e.user_name, e.text) for e in listed.texts] == [
        ("user2", "too short"),
        ("user2", "cite a source"),
        ("user3", "old"),
    ]
    assert listed.counts == {"other": 3} and listed.message_id == rid


# ---- switched off -------------------------------------------------------------------


@pytest.fixture
async def off(
    fake: FakeDiscord,
    services: Services,
    provider: ScriptedProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Harness]:
    """A bot whose configuration switches feedback off (by its environment variable)."""
    monkeypatch.setenv("MSCHAT_FEEDBACK_ENABLED", "false")
    built = build_services(load_config(db=services.config.db), providers={"fake": provider})
    bot, task, stop = await start_bot(fake, built)
    yield Harness(fake, bot, built, provider, task, stop)
    await stop_bot(task, stop)
    await built.aclose()


async def test_switched_off_answers_have_no_buttons_and_old_ones_say_so(off: Harness) -> None:
    h = off
    answer, rid = await answered(h)
    assert walk_components(answer) == []
    # an answer sent while feedback was on keeps its buttons: a click is refused
    answer["components"] = feedback_view(rid).to_components()
    click = await h.fake.click(2, answer, f"mschat:message:{rid}:fb:good")
    assert await thanks(h, click) == f"🚫 {OFF}"
    click = await h.fake.click(2, answer, f"mschat:message:{rid}:fb:other")
    assert await thanks(h, click) == f"🚫 {OFF}"  # no modal asks for a text
    submitted = await h.fake.submit_modal(
        2, f"mschat:fbtext:{rid}", {"text": "typed before"}, message=answer
    )
    assert await thanks(h, submitted) == f"🚫 {OFF}"
    assert await h.manager.feedback_counts(rid) == {}
    assert label(h.fake.messages[int(answer["id"])], f"mschat:message:{rid}:fb:good") == "👍 Good"
