"""Finishing a reply whose writer died: claimed by one manager, answered again by the core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.answer.turns import stamp
from mschat.core.errors import InvalidInput
from mschat.core.events import Completed, Started, TextDelta
from mschat.core.services import Services, build_services
from tests.fakes.scripted_provider import ScriptedProvider


@pytest.fixture
async def other(
    services: Services, provider: ScriptedProvider, db_url: str
) -> AsyncIterator[Services]:
    """A second instance on the same database."""
    built = build_services(load_config(db=db_url), providers={"fake": provider})
    yield built
    await built.aclose()


async def _dead_reply(services: Services) -> tuple[int, int]:
    """A question and half a reply left streaming by a killed bot; (session, reply) ids."""
    manager = services.manager
    user = await manager.user("discord", "7", "ann")
    store = services.store
    session = store.create_session(creator_id=user.id, title="t", origin="discord_guild", public=1)
    _, reply = store.add_question(
        session.id,
        user.id,
        "what is up",
        model="fake/fake-model",
        lease_until=stamp(timedelta(seconds=-60)),
    )
    store.update_message(reply.id, content="half an ans")
    return session.id, reply.id


async def test_a_dead_reply_is_claimed_once_and_answered_again(
    services: Services, other: Services, provider: ScriptedProvider, mschat_home: Path
):
    session_id, reply_id = await _dead_reply(services)
    await services.manager.save_reply_surface(
        reply_id, "message", stamp(timedelta(minutes=10)), channel_id="1", message_id="2"
    )
    assert await other.manager.recover_replies() == 0  # held for a bot
    claims = [
        await services.manager.claim_reply_surfaces(),
        await other.manager.claim_reply_surfaces(),
    ]
    assert sorted(len(c) for c in claims) == [0, 1]
    (surface,) = claims[0] + claims[1]
    assert surface.resume and surface.message_id == "2"
    provider.push(chunks=["a whole ", "answer"])
    events = [e async for e in other.manager.resume_reply(reply_id)]
    started = next(e for e in events if isinstance(e, Started))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "a whole answer"
    assert isinstance(events[-1], Completed)
    messages = services.store.messages(session_id)
    assert [(m.content, m.status) for m in messages] == [
        ("what is up", "complete"),
        ("a whole answer", "complete"),
    ]
    assert messages[1].id == started.reply_id


async def test_a_reply_the_session_went_past_is_interrupted(services: Services):
    session_id, reply_id = await _dead_reply(services)
    user = await services.manager.user("discord", "7")
    services.store.add_message(
        session_id=session_id, author_id=user.id, role="user", content="next"
    )
    with pytest.raises(InvalidInput, match="went on"):
        [e async for e in services.manager.resume_reply(reply_id)]
    assert services.store.get_message(reply_id).status == "interrupted"
    with pytest.raises(InvalidInput, match="interrupted"):
        [e async for e in services.manager.resume_reply(reply_id)]
