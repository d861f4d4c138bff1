"""The fair queue across two managers on one database: slots, order, refusals, pause."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from mschat.core.answer.turns import stamp
from mschat.core.errors import Paused, QueueFull, QueueTimeout
from mschat.core.events import Completed, Event, Failed, Queued, Started
from mschat.core.models import User
from mschat.core.services import Services, build_services
from tests.conftest import eventually
from tests.fakes.scripted_provider import ScriptedProvider


@pytest.fixture
async def pair(services: Services) -> AsyncIterator[tuple[Services, Services]]:
    """Two instances on one database (and one config: the same config.toml)."""
    other = build_services(services.config, providers={"fake": ScriptedProvider()})
    yield services, other
    await other.aclose()


def limit(services: Services, **queue: object) -> None:
    services.config.providers["fake"].max_concurrency = 1
    services.config.sections["queue"].update(queue)


async def waiting(services: Services) -> int:
    return (await asyncio.to_thread(services.store.queue_status, stamp())).waiting


async def waits(services: Services, count: int) -> bool:
    return await waiting(services) == count


async def user(services: Services, name: str, priority: int = 0) -> User:
    manager = services.manager
    made = await manager.user("api", name)
    if priority:
        made = await manager.update_user(await manager.local_user(), made.id, priority=priority)
    return made


async def events(services: Services, asker: User, text: str) -> list[Event]:
    return [e async for e in services.manager.ask(asker, text, new_session=True)]


async def test_priority_users_first_then_oldest_with_one_slot(pair):
    first, second = pair
    limit(first)
    gate = asyncio.Event()
    first.registry._instances["fake"].push(gate=gate)  # type: ignore[attr-defined]
    holder = asyncio.create_task(events(first, await user(first, "holder"), "hold"))
    await eventually(lambda: first.registry._instances["fake"].requests)  # type: ignore[attr-defined]
    started: list[str] = []

    async def ask(services: Services, asker: User) -> list[Event]:
        got = []
        async for event in services.manager.ask(asker, asker.name, new_session=True):
            if isinstance(event, Started):
                started.append(asker.name)
            got.append(event)
        return got

    tasks = []
    for number, (services, name, priority) in enumerate(
        [(second, "ann", 0), (first, "bob", 0), (second, "vip", 5), (first, "cat", 0)], 1
    ):
        tasks.append(asyncio.create_task(ask(services, await user(services, name, priority))))
        await eventually(lambda n=number: waits(first, n))  # type: ignore[misc]
    gate.set()
    results = await asyncio.gather(holder, *tasks)
    assert started == ["vip", "ann", "bob", "cat"]
    for got in results[1:]:
        assert isinstance(got[0], Queued)
        assert isinstance(got[-1], Completed)
    assert await waiting(first) == 0


async def test_a_full_queue_and_a_long_wait_are_refused_and_stored(pair):
    first, second = pair
    limit(first, size=1, max_age=0.5)
    gate = asyncio.Event()
    first.registry._instances["fake"].push(gate=gate)  # type: ignore[attr-defined]
    holder = asyncio.create_task(events(first, await user(first, "holder"), "hold"))
    await eventually(lambda: first.registry._instances["fake"].requests)  # type: ignore[attr-defined]
    late = asyncio.create_task(events(second, await user(second, "late"), "late"))
    await eventually(lambda: waiting(first))
    full = await events(first, await user(first, "full"), "full")
    assert isinstance(full[-1], Failed) and isinstance(full[-1].error, QueueFull)
    timed_out = await late
    assert isinstance(timed_out[-1], Failed) and isinstance(timed_out[-1].error, QueueTimeout)
    for got in (full, timed_out):
        start = got[-2] if isinstance(got[-2], Started) else None
        assert start is not None
        question = first.store.get_message(start.user_message.id)
        reply = first.store.get_message(start.reply_id)
        assert question.content in ("full", "late")
        assert reply.status == "failed" and "queue" in (reply.error or "")
    gate.set()
    assert isinstance((await holder)[-1], Completed)


async def test_pause_rejects_or_holds_new_questions(pair):
    first, second = pair
    first.live.set("queue.paused", True, "tester")
    second.live.refresh()  # what its watcher does within a second
    refused = await events(second, await user(second, "ann"), "paused?")
    assert isinstance(refused[-1], Failed) and isinstance(refused[-1].error, Paused)
    first.live.set("queue.when_paused", "hold", "tester")
    second.live.refresh()
    got: list[Event] = []

    async def hold() -> None:
        async for event in second.manager.ask(await user(second, "bob"), "held", new_session=True):
            got.append(event)

    held = asyncio.create_task(hold())
    await eventually(lambda: got)  # told it waits
    assert not held.done() and await waiting(first) == 1
    first.live.unset("queue.paused")
    second.live.refresh()
    await held
    assert isinstance(got[0], Queued) and isinstance(got[-1], Completed)


async def test_a_dead_instances_slot_frees_itself(services: Services):
    limit(services)
    store = services.store
    dead = await user(services, "dead")
    # another instance took the only slot, then died: its lease is not renewed
    entry = store.enqueue(dead.id, "fake", 0, stamp(), stamp(timedelta(seconds=1)), None)
    assert store.claim_queue("fake", 1, stamp(), stamp(timedelta(seconds=1))) == [entry]
    got = await events(services, await user(services, "alive"), "after")
    assert isinstance(got[0], Queued)
    assert isinstance(got[-1], Completed)
    assert store.queue_states([entry]) == {}


async def test_a_users_questions_are_answered_in_the_order_asked(pair):
    first, _ = pair
    limit(first)
    gate = asyncio.Event()
    first.registry._instances["fake"].push(gate=gate)  # type: ignore[attr-defined]
    holder = asyncio.create_task(events(first, await user(first, "holder"), "hold"))
    await eventually(lambda: first.registry._instances["fake"].requests)  # type: ignore[attr-defined]
    ann = await user(first, "ann")
    started: list[str] = []

    async def ask(text: str) -> None:
        async for event in first.manager.ask(ann, text, new_session=True):
            if isinstance(event, Started):
                started.append(text)

    # asked one after the other, before any of them reached the database
    asks = [asyncio.create_task(ask(str(n))) for n in range(5)]
    await eventually(lambda: waits(first, 5))
    gate.set()
    await asyncio.gather(holder, *asks)
    assert started == ["0", "1", "2", "3", "4"]


async def test_the_place_in_line_is_told_again_when_it_changes(pair):
    first, second = pair
    limit(first)
    gates = {name: asyncio.Event() for name in ("holder", "ann", "bob", "cat")}
    for services, names in ((first, ("holder", "bob")), (second, ("ann", "cat"))):
        for name in names:
            services.registry._instances["fake"].push(gate=gates[name])  # type: ignore[attr-defined]
    got: dict[str, list[Event]] = {}

    async def ask(services: Services, name: str) -> None:
        asker = await user(services, name)
        async for event in services.manager.ask(asker, name, new_session=True):
            got.setdefault(name, []).append(event)

    def told(name: str) -> list[int]:
        # 0: told it waits before the line was counted
        return [e.position for e in got.get(name, []) if isinstance(e, Queued) and e.position]

    asks = [asyncio.create_task(ask(first, "holder"))]
    await eventually(lambda: any(isinstance(e, Started) for e in got.get("holder", [])))
    for number, (services, name) in enumerate([(second, "ann"), (first, "bob"), (second, "cat")]):
        asks.append(asyncio.create_task(ask(services, name)))
        await eventually(lambda n=number: waits(first, n + 1))  # type: ignore[misc]
    steps = [
        ("holder", [[1], [2], [3]]),
        ("ann", [[1], [2, 1], [3, 2]]),
        ("bob", [[1], [2, 1], [3, 2, 1]]),
    ]
    for answering, places in steps:
        # told once per change, never again while it stays (the line is polled far
        # more often)
        await eventually(lambda p=places: [told(n) for n in ("ann", "bob", "cat")] == p)  # type: ignore[misc]
        gates[answering].set()
    gates["cat"].set()
    await asyncio.gather(*asks)
    assert [told(name) for name in ("ann", "bob", "cat")] == [[1], [2, 1], [3, 2, 1]]
    assert [e.text for e in got["cat"] if isinstance(e, Queued) and e.position] == [
        "Waiting in line: 2 ahead of you",
        "Waiting in line: 1 ahead of you",
        "Waiting in line: yours is next",
    ]
