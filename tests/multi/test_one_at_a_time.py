"""``defaults.one_question_at_a_time``: a user's second question, in any instance, is
refused while their first is being answered, and nothing of it is stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from mschat.core.answer.turns import stamp
from mschat.core.errors import Busy
from mschat.core.events import Completed, Started
from mschat.core.services import Services
from tests.conftest import eventually
from tests.dbs import sql
from tests.fakes.scripted_provider import ScriptedProvider
from tests.multi.instances import collect, instance

pytestmark = pytest.mark.backends

ONE_AT_A_TIME = {"defaults": {"one_question_at_a_time": True}}


async def test_a_second_question_in_another_instance_is_busy_until_the_first_is_answered(
    services: Services,
):
    gate = asyncio.Event()
    slow = ScriptedProvider()
    slow.push(chunks=["still ", "writing"], gate=gate)
    first = instance(services, slow, **ONE_AT_A_TIME)
    second = instance(services, **ONE_AT_A_TIME)
    try:
        eve = await first.user("api", "eve")
        answering = asyncio.create_task(collect(first.ask(eve, "first", new_session=True)))
        await eventually(lambda: slow.requests)
        session_id = sql(services.store, "SELECT max(id) FROM sessions")[0][0]
        before = services.store.table_counts()
        eve_there = await second.user("api", "eve")
        with pytest.raises(Busy, match="your previous question is still being answered"):
            await collect(second.ask(eve_there, "second", new_session=True))
        # in the same session too: refused at once, not queued behind the first
        with pytest.raises(Busy):
            await collect(second.ask(eve_there, "third", session_id=session_id))
        with pytest.raises(Busy):
            await collect(second.regenerate(eve_there, session_id))
        assert services.store.table_counts() == before
        # another user is not held up by eve's question
        other = await second.user("api", "olga")
        assert isinstance(
            (await collect(second.ask(other, "mine", new_session=True)))[-1], Completed
        )
        gate.set()
        assert isinstance((await answering)[-1], Completed)
        after = await collect(second.ask(eve_there, "now", session_id=session_id))
        assert isinstance(after[-1], Completed)
    finally:
        await first.aclose()
        await second.aclose()


async def test_questions_at_once_from_two_instances_let_exactly_one_through(
    services: Services,
):
    gates = [asyncio.Event(), asyncio.Event()]
    providers = [ScriptedProvider(), ScriptedProvider()]
    for provider, gate in zip(providers, gates, strict=True):
        for _ in range(3):
            provider.push(chunks=["held"], gate=gate)
    managers = [instance(services, provider, **ONE_AT_A_TIME) for provider in providers]
    try:
        users = [await manager.user("api", "fay") for manager in managers]

        async def ask(index: int, number: int) -> str:
            try:
                async for event in managers[index].ask(
                    users[index], f"q{index}.{number}", new_session=True
                ):
                    if isinstance(event, Started):
                        # the others are decided while this one still streams
                        await eventually(lambda: len(outcomes) == 5)
                        for gate in gates:
                            gate.set()
                return "answered"
            except Busy:
                outcomes.append("busy")
                return "busy"

        outcomes: list[str] = []
        results = await asyncio.gather(*(ask(i, n) for i in range(2) for n in range(3)))
    finally:
        for manager in managers:
            await manager.aclose()
    assert sorted(results) == ["answered"] + ["busy"] * 5
    assert services.store.table_counts()["messages"] == 2


async def test_a_dead_instances_reply_does_not_hold_the_user(services: Services):
    manager = instance(services, **ONE_AT_A_TIME)
    try:
        gus = await manager.user("api", "gus")
        session = await manager.create_session(gus, title="left behind")
        store = services.store
        store.add_message(session_id=session.id, author_id=gus.id, role="user", content="q")
        # the writer of this reply died: its lease ended a second ago
        store.add_reply(session.id, "fake/fake-model", stamp(timedelta(seconds=-1)))
        events = await collect(manager.ask(gus, "again", new_session=True))
        assert isinstance(events[-1], Completed)
    finally:
        await manager.aclose()


async def test_off_by_default_questions_run_side_by_side(services: Services):
    gate = asyncio.Event()
    slow = ScriptedProvider()
    slow.push(chunks=["slow"], gate=gate)
    first = instance(services, slow)
    try:
        hal = await first.user("api", "hal")
        answering = asyncio.create_task(collect(first.ask(hal, "first", new_session=True)))
        await eventually(lambda: slow.requests)
        hal_here = await services.manager.user("api", "hal")
        events = await collect(services.manager.ask(hal_here, "second", new_session=True))
        assert isinstance(events[-1], Completed)
        gate.set()
        await answering
    finally:
        await first.aclose()
