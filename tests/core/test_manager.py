"""The rules of users, statuses and sessions, with a scripted provider."""

from __future__ import annotations

import asyncio

import pytest

from mschat.core.errors import InvalidInput, NotFound, PermissionDenied, ProviderError
from mschat.core.events import (
    Completed,
    Failed,
    HistoryTrimmed,
    Retrying,
    Started,
    TextDelta,
)
from mschat.core.models import MessageStatus, Origin, Status
from mschat.core.services import Services
from tests.conftest import eventually
from tests.dbs import sql
from tests.fakes.scripted_provider import ScriptedProvider


async def collect(events):
    return [event async for event in events]


def reply_text(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# ---- users -------------------------------------------------------------------


async def test_new_users_get_the_defaults_of_their_kind(services: Services):
    manager = services.manager
    discord = await manager.user("discord", "1234", "alice")
    api = await manager.user("api", "shiyemin")
    local = await manager.local_user()
    assert discord.status == Status.DISABLED
    assert api.status == Status.ACTIVE
    assert local.status == Status.ACTIVE and local.admin and not discord.admin
    for user in (discord, api, local):
        assert user.max_tokens == 600
        assert user.temperature == 0.8
        assert not user.show_public and not user.attach
    again = await manager.user("discord", "1234")
    assert again.id == discord.id


async def test_settings_are_validated_and_bump_modified(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    changed = await manager.update_user(alice, alice.id, temperature=1.5, max_tokens=100)
    assert changed.temperature == 1.5 and changed.max_tokens == 100
    assert changed.modified > alice.modified
    with pytest.raises(InvalidInput, match="temperature"):
        await manager.update_user(alice, alice.id, temperature=3)
    with pytest.raises(InvalidInput, match="max_tokens"):
        await manager.update_user(alice, alice.id, max_tokens=0)
    with pytest.raises(InvalidInput, match="status"):
        await manager.update_user(alice, alice.id, status="sleeping")
    with pytest.raises(NotFound, match="mschat models"):
        await manager.update_user(alice, alice.id, model="nope/nothing")
    bob = await manager.user("discord", "2", "bob")
    with pytest.raises(PermissionDenied):
        await manager.update_user(bob, alice.id, status="active")
    with pytest.raises(PermissionDenied):
        await manager.update_user(bob, bob.id, admin=True)
    admin = await manager.local_user()
    assert (await manager.update_user(admin, alice.id, status="new")).status == "new"


# ---- statuses ------------------------------------------------------------------


async def test_disabled_user_plain_message_is_ignored_and_nothing_stored(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    with pytest.raises(PermissionDenied, match="disabled"):
        await collect(manager.chat(alice, "hello?", origin=Origin.DISCORD_GUILD))
    assert services.store.table_counts()["messages"] == 0


async def test_new_without_attach_creates_a_session_per_message(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    alice = await manager.update_user(alice, alice.id, status="new")
    first = await collect(manager.chat(alice, "What is SQLite?", origin=Origin.DISCORD_GUILD))
    second = await collect(manager.chat(alice, "And Postgres?", origin=Origin.DISCORD_GUILD))
    s1, s2 = first[0].session, second[0].session
    assert s1.id != s2.id
    assert s1.title == "What is SQLite?" and s2.title == "And Postgres?"
    assert s1.public  # created in a guild channel
    alice = await manager.get_user(alice.id)
    assert alice.status == Status.NEW and alice.current_session_id is None


async def test_new_with_attach_makes_the_session_current_and_active(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    alice = await manager.update_user(alice, alice.id, status="new", attach=True)
    first = await collect(manager.chat(alice, "Explain WAL mode", origin=Origin.DISCORD_DM))
    session = first[0].session
    assert not session.public  # a DM starts private
    alice = await manager.get_user(alice.id)
    assert alice.status == Status.ACTIVE and alice.current_session_id == session.id
    second = await collect(manager.chat(alice, "And checkpoints?", origin=Origin.DISCORD_DM))
    assert second[0].session.id == session.id
    # the history went to the provider
    provider = services.registry.provider("fake")
    assert [m.content for m in provider.requests[-1].messages][-3:] == [
        "Explain WAL mode",
        "Echo: Explain WAL mode",
        "And checkpoints?",
    ]


async def test_active_without_current_session_creates_one(services: Services):
    manager = services.manager
    api = await manager.user("api", "bob")
    events = await collect(manager.chat(api, "hi there", origin=Origin.API))
    api = await manager.get_user(api.id)
    assert api.current_session_id == events[0].session.id
    again = await collect(manager.chat(api, "again", origin=Origin.API))
    assert again[0].session.id == events[0].session.id


# ---- visibility and permissions --------------------------------------------------


async def test_private_sessions_are_invisible_and_refused(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    bob = await manager.user("discord", "2", "bob")
    private = await manager.create_session(alice, origin=Origin.DISCORD_DM, title="secret")
    public = await manager.create_session(alice, origin=Origin.DISCORD_GUILD, title="open")
    assert [s.id for s in await manager.list_sessions(bob)] == []
    bob = await manager.update_user(bob, bob.id, show_public=True)
    assert [s.id for s in await manager.list_sessions(bob)] == [public.id]
    with pytest.raises(PermissionDenied):
        await manager.switch_session(bob, private.id)
    before = services.store.table_counts()["messages"]
    with pytest.raises(PermissionDenied):
        await collect(manager.ask(bob, "let me in", session_id=private.id))
    assert services.store.table_counts()["messages"] == before
    # a public session can be attached to and asked in, but not changed
    bob = await manager.switch_session(bob, public.id)
    assert bob.current_session_id == public.id and bob.status == Status.ACTIVE
    events = await collect(manager.chat(bob, "hello from bob", origin=Origin.DISCORD_GUILD))
    assert events[0].session.id == public.id
    for change in (
        manager.rename_session(bob, public.id, "mine"),
        manager.set_session_public(bob, public.id, False),
        manager.set_session_model(bob, public.id, "fake/other"),
        manager.set_session_system(bob, public.id, "be rude"),
        manager.remove_session(bob, public.id),
    ):
        with pytest.raises(PermissionDenied, match="creator"):
            await change


async def test_creator_changes_and_clear(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    session = await manager.create_session(alice, title="one")
    assert (await manager.rename_session(alice, session.id, "  two\n ")).title == "two"
    assert (await manager.set_session_model(alice, session.id, "other")).model == "fake/other"
    assert (await manager.set_session_public(alice, session.id, True)).public
    assert (await manager.set_session_system(alice, session.id, "terse")).system_msg == "terse"
    await manager.create_session(alice, title="three")
    assert await manager.clear_sessions(alice) == 2
    assert await manager.list_sessions(alice) == []
    with pytest.raises(InvalidInput):
        await manager.rename_session(alice, session.id, "   ")


# ---- asking --------------------------------------------------------------------


async def test_ask_stores_question_then_streams_and_completes(services: Services):
    manager = services.manager
    me = await manager.local_user()
    events = await collect(manager.ask(me, "Say hello", new_session=True))
    assert isinstance(events[0], Started)
    assert reply_text(events) == "Echo: Say hello"
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.message.status == MessageStatus.COMPLETE
    assert done.message.finish_reason == "stop"
    assert done.message.tokens_out == 2 and done.message.latency_ms is not None
    messages = await manager.messages(me, events[0].session.id)
    assert [(m.role, m.author_id) for m in messages] == [("user", me.id), ("assistant", None)]
    calls = services.store.api_calls_for(done.message.id)
    assert [c["status"] for c in calls] == ["ok"]


async def test_empty_prompt_is_refused_and_nothing_stored(services: Services):
    me = await services.manager.local_user()
    for text in ("", "   \n\t"):
        with pytest.raises(InvalidInput, match="empty"):
            await collect(services.manager.ask(me, text, new_session=True))
    assert services.store.table_counts()["sessions"] == 0


async def test_unknown_model_and_session_errors_say_how_to_list(services: Services):
    me = await services.manager.local_user()
    with pytest.raises(NotFound, match="mschat models"):
        await collect(services.manager.ask(me, "hi", model="nope/none", new_session=True))
    with pytest.raises(NotFound, match="mschat sessions list"):
        await collect(services.manager.ask(me, "hi", session_id=999))
    assert services.store.table_counts()["messages"] == 0


async def test_provider_failure_keeps_question_and_partial_reply(
    services: Services, provider: ScriptedProvider
):
    provider.push(chunks=["partial "], error=ProviderError("server error 500", kind="server"))
    me = await services.manager.local_user()
    events = await collect(services.manager.ask(me, "will fail", new_session=True))
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.message.status == MessageStatus.FAILED
    assert failed.message.content == "partial "
    assert "500" in failed.message.error
    messages = await services.manager.messages(me, events[0].session.id)
    assert messages[0].content == "will fail"
    assert services.store.api_calls_for(failed.message.id)[0]["status"] == "error"


async def test_missing_finish_reason_is_an_error(services: Services, provider: ScriptedProvider):
    provider.push(chunks=["cut"], finish=None)
    me = await services.manager.local_user()
    events = await collect(services.manager.ask(me, "q", new_session=True))
    assert isinstance(events[-1], Failed)
    assert "finish reason" in str(events[-1].error)


async def test_retries_are_recorded_one_api_call_per_request(
    services: Services, provider: ScriptedProvider
):
    provider.push(chunks=["ok"], retries=2)
    me = await services.manager.local_user()
    events = await collect(services.manager.ask(me, "q", new_session=True))
    assert sum(isinstance(e, Retrying) for e in events) == 2
    calls = services.store.api_calls_for(events[-1].message.id)
    assert [c["status"] for c in calls] == ["retry", "retry", "ok"]


async def test_cancellation_marks_the_reply_interrupted(
    services: Services, provider: ScriptedProvider
):
    gate = asyncio.Event()
    provider.push(chunks=["first part", " never"], gate=gate)
    me = await services.manager.local_user()
    seen: list = []

    async def consume():
        async for event in services.manager.ask(me, "long answer", new_session=True):
            seen.append(event)

    task = asyncio.create_task(consume())
    await eventually(lambda: any(isinstance(e, TextDelta) for e in seen))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    reply = services.store.get_message(seen[0].reply_id)
    assert reply.status == MessageStatus.INTERRUPTED
    assert reply.content == "first part"


async def test_asks_in_one_session_are_serialised(services: Services, provider: ScriptedProvider):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    bob = await manager.user("discord", "2", "bob")
    session = await manager.create_session(alice, origin=Origin.DISCORD_GUILD, title="shared")
    gate = asyncio.Event()
    provider.push(chunks=["A1", "A2"], gate=gate)
    locked: list[int] = []
    turns = manager._answerer.turns
    session_lock = turns.lock
    turns.lock = lambda sid: (locked.append(sid), session_lock(sid))[1]  # type: ignore[method-assign]
    first = asyncio.create_task(collect(manager.ask(alice, "from alice", session_id=session.id)))
    await eventually(lambda: provider.requests)
    second = asyncio.create_task(collect(manager.ask(bob, "from bob", session_id=session.id)))
    await eventually(lambda: len(locked) == 2)  # bob waits for alice's turn
    gate.set()
    await asyncio.gather(first, second)
    messages = services.store.messages(session.id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "from alice"),
        ("assistant", "A1A2"),
        ("user", "from bob"),
        ("assistant", "Echo: from bob"),
    ]
    assert messages[2].author_id == bob.id


async def test_history_is_trimmed_to_fit_and_too_long_is_a_clear_error(
    services: Services, provider: ScriptedProvider
):
    manager = services.manager
    me = await manager.local_user()
    me = await manager.update_user(me, me.id, max_tokens=1000)
    session = await manager.create_session(me, title="long")
    for index in range(6):
        await collect(manager.ask(me, f"{index} " + "word " * 300, session_id=session.id))
    events = await collect(manager.ask(me, "short question", session_id=session.id))
    trimmed = [e for e in events if isinstance(e, HistoryTrimmed)]
    assert trimmed and trimmed[0].dropped > 0
    assert provider.requests[-1].messages[-1].content == "short question"
    huge = "x" * 1_000_000
    events = await collect(manager.ask(me, huge, session_id=session.id))
    assert isinstance(events[-1], Failed)
    assert "too long for model fake/fake-model" in str(events[-1].error)
    stored = services.store.messages(session.id)
    assert any(m.content == huge for m in stored)


async def test_verbatim_unicode_control_chars_and_sql(services: Services):
    manager = services.manager
    me = await manager.local_user()
    text = "'; DROP TABLE users; -- \x07 ünïcødé 🐍 \u202e"
    events = await collect(manager.ask(me, text, new_session=True, title=text))
    session = await manager.get_session(me, events[0].session.id)
    assert session.title == " ".join(text.split())
    assert services.store.messages(session.id)[0].content == text
    assert services.store.table_counts()["users"] == 1


async def test_regenerate_and_fork(services: Services, provider: ScriptedProvider):
    manager = services.manager
    me = await manager.local_user()
    events = await collect(manager.ask(me, "first", new_session=True))
    session_id = events[0].session.id
    await collect(manager.ask(me, "second", session_id=session_id))
    provider.push(chunks=["again"])
    regen = await collect(manager.regenerate(me, session_id))
    assert reply_text(regen) == "again"
    contents = [m.content for m in services.store.messages(session_id)]
    assert contents == ["first", "Echo: first", "second", "again"]
    second_id = services.store.messages(session_id)[2].id
    fork = await manager.fork(me, second_id, "second, edited")
    assert fork.forked_from_id == session_id
    await collect(manager.ask(me, "second, edited", session_id=fork.id))
    assert [m.content for m in services.store.messages(fork.id)] == [
        "first",
        "Echo: first",
        "second, edited",
        "Echo: second, edited",
    ]
    assert len(services.store.messages(session_id)) == 4  # original kept


async def test_search_respects_visibility(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    bob = await manager.user("discord", "2", "bob")
    private = await manager.create_session(alice, origin=Origin.DISCORD_DM, title="p")
    public = await manager.create_session(alice, origin=Origin.DISCORD_GUILD, title="q")
    await collect(manager.ask(alice, "zebra secret", session_id=private.id))
    await collect(manager.ask(alice, "zebra public", session_id=public.id))
    assert {h.session_id for h in await manager.search(alice, "zebra")} == {private.id, public.id}
    assert {h.session_id for h in await manager.search(bob, "zebra")} == {public.id}
    with pytest.raises(InvalidInput):
        await manager.search(bob, "  ")


async def test_export_markdown_and_json(services: Services):
    manager = services.manager
    me = await manager.local_user()
    events = await collect(manager.ask(me, "Export me", new_session=True))
    markdown = await manager.export_session(me, events[0].session.id, "markdown")
    assert "# Export" in markdown and "Echo: Export me" in markdown
    import json

    data = json.loads(await manager.export_session(me, events[0].session.id, "json"))
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]


async def test_admin_reads_but_cannot_ask_in_anothers_private_session(services: Services):
    manager = services.manager
    admin = await manager.local_user()
    alice = await manager.user("discord", "1", "alice")
    private = await manager.create_session(alice, origin=Origin.DISCORD_DM, title="diary")
    await collect(manager.ask(alice, "dear diary", session_id=private.id))
    assert len(await manager.messages(admin, private.id)) == 2
    with pytest.raises(PermissionDenied):
        await collect(manager.ask(admin, "hi", session_id=private.id))
    with pytest.raises(PermissionDenied):
        await manager.switch_session(admin, private.id)
    assert (await manager.rename_session(admin, private.id, "moderated")).title == "moderated"


async def test_ignored_users_and_rate_limits_are_refused_before_storing(services: Services):
    from mschat.core.errors import Busy

    manager = services.manager
    admin = await manager.local_user()
    troll = await manager.user("api", "troll")
    await manager.update_user(admin, troll.id, ignored=True)
    troll = await manager.get_user(troll.id)
    with pytest.raises(PermissionDenied):
        await collect(manager.chat(troll, "spam", origin=Origin.API))
    limited = await manager.user("api", "limited")
    limited = await manager.update_user(admin, limited.id, rate_limit=2)
    for text in ("one", "two"):
        await collect(manager.chat(limited, text, origin=Origin.API))
    with pytest.raises(Busy, match="2 questions per 6 hours"):
        await collect(manager.chat(limited, "three", origin=Origin.API))
    with pytest.raises(PermissionDenied):
        await manager.update_user(limited, limited.id, rate_limit=100)
    assert services.store.table_counts()["messages"] == 4


async def test_two_processes_take_turns_in_one_public_session(
    services: Services, provider: ScriptedProvider
):
    """Another SessionManager on the same file stands for another process (bot vs API)."""
    from mschat.core.services import build_services

    other_provider = ScriptedProvider("fake")
    other = build_services(services.config, providers={"fake": other_provider})
    try:
        alice = await services.manager.user("discord", "1", "alice")
        session = await services.manager.create_session(
            alice, origin=Origin.DISCORD_GUILD, title="shared"
        )
        bob = await other.manager.user("api", "bob")
        gate = asyncio.Event()
        provider.push(chunks=["A1", "A2"], gate=gate)
        first = asyncio.create_task(
            collect(services.manager.ask(alice, "from alice", session_id=session.id))
        )
        await eventually(lambda: provider.requests)
        attempts: list[bool] = []
        take_lease = other.store.take_lease

        def recording(*args: object) -> bool:
            attempts.append(take_lease(*args))  # type: ignore[arg-type]
            return attempts[-1]

        other.store.take_lease = recording  # type: ignore[method-assign]
        second = asyncio.create_task(
            collect(other.manager.ask(bob, "from bob", session_id=session.id))
        )
        await eventually(lambda: False in attempts)  # bob's process found the lease taken
        assert services.store.table_counts()["messages"] == 2  # nothing of his is stored
        gate.set()
        await asyncio.gather(first, second)
        contents = [(m.role, m.content) for m in services.store.messages(session.id)]
        assert contents == [
            ("user", "from alice"),
            ("assistant", "A1A2"),
            ("user", "from bob"),
            ("assistant", "Echo: from bob"),
        ]
        # bob's context held alice's finished reply
        assert [m.content for m in other_provider.requests[0].messages][-3:] == [
            "from alice",
            "A1A2",
            "from bob",
        ]
        assert services.store.get_session(session.id).public
        lease = sql(services.store, "SELECT lease_owner FROM sessions WHERE id = ?", [session.id])
        assert lease == [(None,)]
    finally:
        await other.aclose()


async def test_a_lease_left_by_a_dead_process_expires(services: Services):
    manager = services.manager
    me = await manager.local_user()
    session = await manager.create_session(me, title="stuck", public=True)
    sql(
        services.store,
        "UPDATE sessions SET lease_owner = 'dead-host:1:x', lease_until = ? WHERE id = ?",
        ["2000-01-01T00:00:00+00:00", session.id],
    )
    events = await collect(manager.ask(me, "still works", session_id=session.id))
    assert isinstance(events[-1], Completed)


async def test_started_says_when_the_current_session_was_left(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    bob = await manager.user("discord", "2", "bob")
    shared = await manager.create_session(alice, origin=Origin.DISCORD_GUILD, title="shared")
    bob = await manager.switch_session(bob, shared.id)
    await manager.set_session_public(alice, shared.id, False)
    events = await collect(manager.chat(bob, "still there?", origin=Origin.DISCORD_GUILD))
    started = events[0]
    assert (started.left_session_id, started.left_reason) == (shared.id, "private")
    assert started.session.id != shared.id


# ---- finding sessions and who may chat ------------------------------------------


async def test_a_title_several_visible_sessions_share_is_an_error_listing_them(
    services: Services,
):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    bob = await manager.user("discord", "2", "bob")
    one = await manager.create_session(alice, title="foo")
    two = await manager.create_session(alice, title="Foo")
    shared = await manager.create_session(bob, origin=Origin.DISCORD_GUILD, title="foo")
    await manager.create_session(bob, origin=Origin.DISCORD_DM, title="foo")  # invisible
    with pytest.raises(InvalidInput) as raised:
        await manager.find_session(alice, "foo")
    assert str(raised.value) == (
        f'"foo" matches sessions {one.id}, {two.id} and {shared.id}; use an id'
    )
    await manager.remove_session(alice, two.id)
    with pytest.raises(InvalidInput, match=f"matches sessions {one.id} and {shared.id};"):
        await manager.find_session(alice, "foo")
    carol = await manager.user("discord", "3", "carol")
    assert (await manager.find_session(carol, "foo")).id == shared.id


async def test_who_may_not_chat_is_refused_by_type_before_anything_is_stored(
    services: Services,
):
    from mschat.core.errors import ChatDisabled, RateLimited, UserIgnored

    manager = services.manager
    admin = await manager.local_user()
    disabled = await manager.user("discord", "1", "disabled")  # the default for members
    ignored = await manager.user("api", "ignored")
    ignored = await manager.update_user(admin, ignored.id, ignored=True)
    limited = await manager.user("api", "limited")
    limited = await manager.update_user(admin, limited.id, rate_limit=1)
    await collect(manager.ask(limited, "the one allowed", new_session=True))
    before = services.store.table_counts()
    with pytest.raises(ChatDisabled):
        await collect(manager.chat(disabled, "hello?", origin=Origin.DISCORD_GUILD))
    with pytest.raises(ChatDisabled):
        await collect(manager.ask(disabled, "hello?", origin=Origin.DISCORD_GUILD))
    for events in (
        manager.chat(ignored, "spam", origin=Origin.API),
        manager.ask(ignored, "spam", new_session=True),
    ):
        with pytest.raises(UserIgnored):
            await collect(events)
    for events in (
        manager.chat(limited, "one more", origin=Origin.API),
        manager.ask(limited, "one more", new_session=True),
    ):
        with pytest.raises(RateLimited, match="1 question per 6 hours"):
            await collect(events)
    assert services.store.table_counts() == before
