"""A resumed reply waiting in the queue keeps its lease: no other instance takes it over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from mschat.core.answer.turns import stamp
from mschat.core.events import Completed, Event, Queued, Started
from mschat.core.manager import SessionManager
from mschat.core.services import Services, build_services
from tests.conftest import eventually
from tests.dbs import sql
from tests.fakes.scripted_provider import ScriptedProvider

#: a reply lease short enough to run out several times while the test waits
SHORT = timedelta(seconds=0.6)


@pytest.fixture
async def managers(services: Services) -> AsyncIterator[tuple[SessionManager, SessionManager]]:
    """Two instances on one database, with short reply leases."""
    other = build_services(services.config, providers={"fake": ScriptedProvider()})
    pair = (
        SessionManager(services.store, services.registry, lease=SHORT),
        SessionManager(other.store, other.registry, lease=SHORT),
    )
    yield pair
    for manager in pair:
        manager._executor.shutdown(wait=True)
    await other.aclose()


async def test_a_resumed_reply_waiting_for_a_slot_is_not_taken_over(
    services: Services,
    provider: ScriptedProvider,
    managers: tuple[SessionManager, SessionManager],
) -> None:
    first, second = managers
    services.config.providers["fake"].max_concurrency = 1
    store = services.store
    # the only slot is busy answering someone else
    gate = asyncio.Event()
    provider.push(gate=gate)
    busy = await first.user("api", "busy")
    holder = asyncio.create_task(_all(first.ask(busy, "hold the slot", new_session=True)))
    await eventually(lambda: provider.requests)
    # a reply a killed bot was streaming, shown in a Discord message
    ann = await first.user("discord", "7", "ann")
    session = store.create_session(creator_id=ann.id, title="t", origin="discord_guild", public=1)
    _, reply = store.add_question(
        session.id,
        ann.id,
        "what is up",
        model="fake/fake-model",
        lease_until=stamp(timedelta(seconds=-60)),
    )
    store.save_reply_surface(
        reply.id, "message", stamp(timedelta(minutes=10)), channel_id="1", message_id="2"
    )
    (surface,) = await first.claim_reply_surfaces()
    assert surface.resume
    [(claimed_until,)] = sql(store, "SELECT lease_until FROM messages WHERE id = ?", [reply.id])
    got: list[Event] = []

    async def resume() -> None:
        async for event in first.resume_reply(reply.id):
            got.append(event)

    resuming = asyncio.create_task(resume())
    try:
        await eventually(lambda: any(isinstance(e, Queued) for e in got))
        # a lease later, the resumed reply still waits: its lease was renewed
        await eventually(lambda: stamp(-SHORT) > claimed_until, 5)
        assert await second.claim_reply_surfaces() == []
        assert await second.recover_replies() == 0
        assert store.get_message(reply.id).status == "streaming"
    finally:
        provider.push(chunks=["finished"])
        gate.set()
    await asyncio.wait_for(asyncio.gather(holder, resuming), 10)
    assert isinstance(got[-1], Completed)
    started = next(e for e in got if isinstance(e, Started))
    assert [(m.content, m.status) for m in store.messages(session.id)] == [
        ("what is up", "complete"),
        ("finished", "complete"),
    ]
    assert store.messages(session.id)[1].id == started.reply_id


async def _all(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]
