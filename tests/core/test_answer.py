"""The answer pipeline: reply leases and recovery, waiting for a turn, retries, tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

from mschat.config import load_config
from mschat.core.events import Completed, Started, TextDelta, WaitingForTurn
from mschat.core.manager import SessionManager
from mschat.core.models import MessageStatus, Origin
from mschat.core.services import Services, build_services
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    ProviderEvent,
    TextChunk,
)
from mschat.providers.registry import Registry
from mschat.store import Store, open_store
from tests.conftest import eventually, write_config
from tests.dbs import sql
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.scripted_provider import ScriptedProvider


async def collect(events):
    return [event async for event in events]


def stamp(seconds: float) -> str:
    from mschat.core.answer.turns import stamp as lease_stamp

    return lease_stamp(timedelta(seconds=seconds))


def lease_of(store: Store, message_id: int) -> str | None:
    return sql(store, "SELECT lease_until FROM messages WHERE id = ?", [message_id])[0][0]


class GatedProvider:
    """Sends nothing until ``gate`` opens (a model slow to give its first token)."""

    def __init__(self) -> None:
        self.name = "fake"
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        self.asked.set()
        await self.gate.wait()
        yield TextChunk("late")
        yield FinishChunk("stop")

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


class FramingProvider(ScriptedProvider):
    """A tokenizer like a chat template's: 3 tokens per message, 3 to prime the reply."""

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> int | None:
        return sum(3 + len(m.role.split()) + len(m.content.split()) for m in messages) + 3


def another_process(services: Services, provider: object, **settings: object) -> SessionManager:
    """A second manager over the same database, as another process would have."""
    registry = Registry(services.config, providers={"fake": provider})  # type: ignore[dict-item]
    return SessionManager(open_store(services.config.db), registry, **settings)  # type: ignore[arg-type]


# ---- reply leases ------------------------------------------------------------------


async def test_a_reply_whose_lease_expired_is_interrupted_at_once_by_a_new_manager(
    services: Services,
):
    store = services.store
    me = await services.manager.local_user()
    session = await services.manager.create_session(me, title="leases")
    dead = store.add_reply(session.id, "fake/fake-model", stamp(-1))  # its writer stopped
    live = store.add_reply(session.id, "fake/fake-model", stamp(30))
    other = build_services(services.config, providers={"fake": ScriptedProvider()})
    try:
        recovered = other.store.get_message(dead.id)
        assert recovered.status == MessageStatus.INTERRUPTED
        assert "stopped" in (recovered.error or "")
        assert other.store.get_message(live.id).status == MessageStatus.STREAMING
    finally:
        await other.aclose()


async def test_a_live_writer_renews_its_lease_while_waiting_for_the_first_token(
    services: Services,
):
    provider = GatedProvider()
    writer = another_process(services, provider, lease=timedelta(seconds=1.5))
    try:
        me = await writer.local_user()
        seen: list = []

        async def ask() -> None:
            async for event in writer.ask(me, "slow to start", new_session=True):
                seen.append(event)

        task = asyncio.create_task(ask())
        await provider.asked.wait()
        reply_id = seen[0].reply_id
        first = lease_of(services.store, reply_id)
        assert first is not None
        await eventually(lambda: lease_of(services.store, reply_id) != first)
        # past the lease it was created with, yet the writer lives: nothing to recover
        assert await services.manager.recover_replies() == 0
        assert services.store.get_message(reply_id).status == MessageStatus.STREAMING
        provider.gate.set()
        await task
        done = services.store.get_message(reply_id)
        assert (done.status, done.content) == (MessageStatus.COMPLETE, "late")
        assert lease_of(services.store, reply_id) is None
    finally:
        await writer.aclose()


async def test_a_fast_reply_writes_no_lease_renewal_of_its_own(services: Services):
    renewals: list[int] = []
    renew = services.store.renew_reply_lease
    services.store.renew_reply_lease = lambda *args: (renewals.append(1), renew(*args))[1]  # type: ignore[method-assign]
    me = await services.manager.local_user()
    events = await collect(services.manager.ask(me, "quick", new_session=True))
    assert isinstance(events[-1], Completed)
    assert renewals == []


async def test_watch_replies_notices_a_dead_writer_within_a_lease(services: Services):
    watcher = another_process(services, ScriptedProvider(), lease=timedelta(seconds=0.4))
    try:
        watcher.watch_replies()
        watcher.watch_replies()  # idempotent
        me = await services.manager.local_user()
        session = await services.manager.create_session(me, title="watched")
        # a writer that made its row, then died without renewing it
        orphan = services.store.add_reply(session.id, "fake/fake-model", stamp(0.2))
        await eventually(
            lambda: services.store.get_message(orphan.id).status == MessageStatus.INTERRUPTED
        )
    finally:
        await watcher.aclose()
    assert watcher._watch is None


async def test_replies_from_before_leases_still_expire_by_age(db_url: str):
    store = open_store(db_url)
    user = store.create_user(kind="local", external_id="me", name="me", status="active")
    session = store.create_session(
        creator_id=user.id, title="t", model=None, system_msg=None, public=0, origin="terminal"
    )
    old = store.add_message(
        session_id=session.id,
        role="assistant",
        content="half",
        status="streaming",
        created="2020-01-01T00:00:00+00:00",
    )
    recent = store.add_message(
        session_id=session.id, role="assistant", content="", status="streaming"
    )
    from mschat.core.answer import recover_replies

    assert recover_replies(store) == 1
    assert store.get_message(old.id).status == MessageStatus.INTERRUPTED
    assert store.get_message(recent.id).status == MessageStatus.STREAMING
    store.close()


# ---- waiting for a turn -----------------------------------------------------------


async def test_waiting_for_another_process_is_said_once_before_started(
    services: Services, provider: ScriptedProvider
):
    other_provider = ScriptedProvider("fake")
    other = another_process(services, other_provider)
    try:
        alice = await services.manager.user("discord", "1", "alice")
        session = await services.manager.create_session(
            alice, origin=Origin.DISCORD_GUILD, title="shared"
        )
        bob = await other.user("api", "bob")
        gate = asyncio.Event()
        provider.push(chunks=["A1", "A2"], gate=gate)
        first = asyncio.create_task(
            collect(services.manager.ask(alice, "from alice", session_id=session.id))
        )
        await eventually(lambda: provider.requests)
        seen: list = []

        async def ask_bob() -> None:
            async for event in other.ask(bob, "from bob", session_id=session.id):
                seen.append(event)

        second = asyncio.create_task(ask_bob())
        await eventually(lambda: seen)
        assert seen == [WaitingForTurn(session.id)]
        assert services.store.table_counts()["messages"] == 2  # nothing of bob's stored yet
        gate.set()
        alice_events, _ = await asyncio.gather(first, second)
        assert not any(isinstance(e, WaitingForTurn) for e in alice_events)
        assert sum(isinstance(e, WaitingForTurn) for e in seen) == 1
        assert isinstance(seen[1], Started) and isinstance(seen[-1], Completed)
    finally:
        await other.aclose()


async def test_an_ask_waiting_in_this_process_is_said_too(
    services: Services, provider: ScriptedProvider
):
    manager = services.manager
    me = await manager.local_user()
    session = await manager.create_session(me, title="busy")
    gate = asyncio.Event()
    provider.push(chunks=["one", "two"], gate=gate)
    first = asyncio.create_task(collect(manager.ask(me, "first", session_id=session.id)))
    await eventually(lambda: provider.requests)
    seen: list = []

    async def ask_again() -> None:
        async for event in manager.ask(me, "second", session_id=session.id):
            seen.append(event)

    second = asyncio.create_task(ask_again())
    await eventually(lambda: seen)
    assert seen == [WaitingForTurn(session.id)]
    gate.set()
    await asyncio.gather(first, second)
    assert isinstance(seen[1], Started)


# ---- retries ------------------------------------------------------------------------


async def test_an_attempts_latency_leaves_out_the_wait_before_it(mschat_home: Path, db_url: str):
    async with FakeOpenAI(chunk_size=8) as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "openai/fake-model"\n'
            f'[providers.openai]\nbase_url = "{server.base_url}"\napi_key = "sk-test"\n'
            'models = ["fake-model"]\nmax_retries = 1\n',
        )
        services = build_services(load_config(db=db_url))
        try:
            server.inject("429", retry_after_ms=None, retry_after="2")
            me = await services.manager.local_user()
            events = await collect(services.manager.ask(me, "after a 429", new_session=True))
            assert isinstance(events[-1], Completed)
            retry, ok = services.store.api_calls_for(events[-1].message.id)
        finally:
            await services.aclose()
    assert (retry["status"], retry["http_status"], ok["status"]) == ("retry", 429, "ok")
    # the 2 s the provider waited belong to neither attempt
    assert ok["latency_ms"] < 2000
    waited = datetime.fromisoformat(ok["started"]) - datetime.fromisoformat(retry["started"])
    assert waited >= timedelta(seconds=2)
    assert events[-1].message.latency_ms >= 2000  # the reply itself did take that long


# ---- tokens -------------------------------------------------------------------------


async def test_the_prompt_is_counted_with_each_messages_framing_once(
    mschat_home: Path, db_url: str
):
    provider = FramingProvider("fake")
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n',
    )
    services = build_services(load_config(db=db_url), providers={"fake": provider})
    try:
        me = await services.manager.local_user()
        first = await collect(
            services.manager.ask(me, "one two three", new_session=True, system="be brief")
        )
        session_id = first[0].session.id
        events = await collect(services.manager.ask(me, "four five", session_id=session_id))
    finally:
        await services.aclose()
    sent = list(provider.requests[-1].messages)
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.prompt_tokens == provider.count_tokens("fake-model", sent)


async def test_content_flushes_carry_the_lease(services: Services):
    provider = ScriptedProvider("fake")
    gate = asyncio.Event()
    provider.push(chunks=["first", " second"], gate=gate)
    writer = another_process(services, provider, flush_interval=0.0)
    try:
        me = await writer.local_user()
        events = writer.ask(me, "flush", new_session=True)
        started = await anext(events)
        created = lease_of(services.store, started.reply_id)
        assert await anext(events) == TextDelta("first")
        stream = asyncio.create_task(collect(events))
        await eventually(lambda: services.store.get_message(started.reply_id).content == "first")
        flushed = lease_of(services.store, started.reply_id)
        assert created is not None and flushed is not None and flushed > created
        gate.set()
        assert isinstance((await stream)[-1], Completed)
    finally:
        await writer.aclose()
