"""The checks of a question made in the transaction that stores it: the rate limit,
one question at a time, and what a refusal leaves (nothing)."""

from __future__ import annotations

import asyncio

import pytest

from mschat.core import eligibility
from mschat.core.errors import Busy, RateLimited, UserIgnored
from mschat.core.events import Completed
from mschat.core.services import Services
from tests.conftest import eventually
from tests.fakes.scripted_provider import ScriptedProvider


async def collect(events):
    return [event async for event in events]


def spy(store: object, name: str, calls: list[str]) -> None:
    original = getattr(store, name)

    def record(*args: object, **kwargs: object) -> object:
        calls.append(name)
        return original(*args, **kwargs)

    setattr(store, name, record)


async def test_without_a_limit_or_one_at_a_time_an_ask_takes_no_lock(services: Services):
    calls: list[str] = []
    for name in ("lock_user", "user_asks"):
        spy(services.store, name, calls)
    me = await services.manager.local_user()
    events = await collect(services.manager.ask(me, "free", new_session=True))
    assert isinstance(events[-1], Completed)
    assert calls == []


async def test_a_rate_limited_question_is_counted_under_the_users_lock(services: Services):
    calls: list[str] = []
    for name in ("lock_user", "user_asks"):
        spy(services.store, name, calls)
    manager = services.manager
    admin = await manager.local_user()
    ida = await manager.user("api", "ida")
    ida = await manager.update_user(admin, ida.id, rate_limit=1)
    await collect(manager.ask(ida, "one", new_session=True))
    assert calls == ["lock_user", "user_asks"]
    before = services.store.table_counts()
    with pytest.raises(RateLimited):
        await collect(manager.ask(ida, "two", new_session=True))
    assert services.store.table_counts() == before


async def test_answering_again_is_not_counted_and_refused_to_an_ignored_user(
    services: Services,
):
    manager = services.manager
    admin = await manager.local_user()
    jo = await manager.user("api", "jo")
    jo = await manager.update_user(admin, jo.id, rate_limit=1)
    first = await collect(manager.ask(jo, "only one", new_session=True))
    session_id = first[0].session.id
    again = await collect(manager.regenerate(jo, session_id))
    assert isinstance(again[-1], Completed)
    await manager.update_user(admin, jo.id, ignored=True)
    jo = await manager.get_user(jo.id)
    before = await manager.messages(jo, session_id)
    with pytest.raises(UserIgnored):
        await collect(manager.regenerate(jo, session_id))
    assert await manager.messages(jo, session_id) == before


async def test_a_refused_answer_again_keeps_the_old_reply(
    services: Services, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
):
    manager = services.manager
    manager.defaults["one_question_at_a_time"] = True
    kim = await manager.user("api", "kim")
    done = await collect(manager.ask(kim, "kept", new_session=True))
    gate = asyncio.Event()
    provider.push(chunks=["busy"], gate=gate)
    elsewhere = asyncio.create_task(collect(manager.ask(kim, "slow", new_session=True)))
    await eventually(lambda: len(provider.requests) == 2)
    session_id = done[0].session.id
    before = await manager.messages(kim, session_id)
    # past the first look (as when both start at once): the transaction refuses it
    monkeypatch.setattr(eligibility, "check_not_answering", lambda store, user: None)
    with pytest.raises(Busy, match="still being answered"):
        await collect(manager.regenerate(kim, session_id))
    assert await manager.messages(kim, session_id) == before
    gate.set()
    assert isinstance((await elsewhere)[-1], Completed)
