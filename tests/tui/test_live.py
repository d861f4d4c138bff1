"""Live views across instances: another manager, with its own store, on the same database.

On PostgreSQL the changes are pushed (LISTEN/NOTIFY) and nothing polls; on
SQLite the app polls ``PRAGMA data_version``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from mschat.core.answer.turns import stamp
from mschat.core.errors import DatabaseError
from mschat.core.events import Event, Started
from mschat.core.manager import SessionManager
from mschat.core.models import MessageStatus
from mschat.core.services import Services
from mschat.providers.registry import Registry
from mschat.store import open_store
from mschat.tui.widgets.chat import MessageView
from tests.conftest import eventually
from tests.dbs import sql
from tests.fakes.scripted_provider import ScriptedProvider
from tests.tui.conftest import SIZE, build_app, ready, wait_for


def shown(app) -> list[str]:
    return [v.message.content for v in app.chat.query(MessageView)]


@pytest.fixture
async def other(services: Services) -> AsyncIterator[SessionManager]:
    """Another instance: a manager over a store of its own, flushing every chunk at once."""
    provider = ScriptedProvider("fake")
    registry = Registry(services.config, providers={"fake": provider})  # type: ignore[dict-item]
    manager = SessionManager(
        open_store(services.config.db),
        registry,
        local_user_name=services.manager.local_user_name,  # the same person, elsewhere
        flush_interval=0.0,
    )
    manager.provider = provider  # type: ignore[attr-defined]
    yield manager
    await manager.aclose()


def count_calls(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[int]:
    """Count the calls of ``obj.name`` (one list item per call)."""
    calls: list[int] = []
    original: Callable[..., object] = getattr(obj, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


async def drain(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


@pytest.mark.backends
async def test_a_reply_streamed_by_another_instance_shows_while_it_streams(
    services: Services, other: SessionManager, backend: str, monkeypatch: pytest.MonkeyPatch
):
    polls = count_calls(monkeypatch, services.store, "data_version")
    me = await services.manager.local_user()
    session = await services.manager.create_session(me, title="Shared")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session is not None and app.session.id == session.id
        gate = asyncio.Event()
        other.provider.push(chunks=["Partial", " answer"], gate=gate)  # type: ignore[attr-defined]
        events = other.ask(await other.local_user(), "asked elsewhere", session_id=session.id)
        started = await anext(events)
        assert isinstance(started, Started)
        streaming = asyncio.create_task(drain(events))
        try:
            await wait_for(
                pilot,
                lambda: shown(app) == ["asked elsewhere", "Partial"],
                what="the reply while it streams",
            )
            assert app.chat.views[started.reply_id].message.status == MessageStatus.STREAMING
        finally:
            gate.set()
            await streaming
        await wait_for(
            pilot,
            lambda: app.chat.views[started.reply_id].message.status == MessageStatus.COMPLETE,
            what="the finished reply",
        )
        assert shown(app) == ["asked elsewhere", "Partial answer"]
    if backend == "postgresql":
        assert polls == []  # pushed: the app never polled
    else:
        assert polls  # SQLite: data_version, polled


@pytest.mark.backends
async def test_the_sidebar_shows_a_session_created_by_another_instance(
    services: Services, other: SessionManager, backend: str, monkeypatch: pytest.MonkeyPatch
):
    polls = count_calls(monkeypatch, services.store, "data_version")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.sidebar.sessions == []
        made = await other.create_session(await other.local_user(), title="Made elsewhere")
        await wait_for(
            pilot,
            lambda: [s.id for s in app.sidebar.sessions] == [made.id],
            what="the new session listed",
        )
        await other.rename_session(await other.local_user(), made.id, "Renamed elsewhere")
        await wait_for(
            pilot,
            lambda: app.sidebar.sessions[0].title == "Renamed elsewhere",
            what="the new title",
        )
    assert (polls == []) == (backend == "postgresql")


@pytest.mark.backends
async def test_an_open_session_deleted_by_another_instance_closes(
    services: Services, other: SessionManager
):
    me = await services.manager.local_user()
    doomed = await services.manager.create_session(me, title="Doomed")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session is not None and app.session.id == doomed.id
        await other.remove_session(await other.local_user(), doomed.id)
        await wait_for(pilot, lambda: app.session is None, what="view closed")
        assert all(s.id != doomed.id for s in app.sidebar.sessions)


async def test_a_refresh_that_cannot_reach_the_database_is_tried_again(
    services: Services, other: SessionManager, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("mschat.tui.app.REFRESH_RETRY", 0.05)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        failed: list[int] = []
        list_sessions = services.manager.list_sessions

        async def unreachable_once(*args: object, **kwargs: object) -> object:
            if not failed:  # as a pooled connection the database dropped (a restart)
                failed.append(1)
                raise DatabaseError("cannot reach database: no connection")
            return await list_sessions(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(services.manager, "list_sessions", unreachable_once)
        made = await other.create_session(await other.local_user(), title="Made elsewhere")
        await wait_for(
            pilot,
            lambda: [s.id for s in app.sidebar.sessions] == [made.id],
            what="the refresh, tried again",
        )
        assert failed == [1]
        assert not app._notifications  # a refresh tried again is no error of the user's


def listener_pid(services: Services) -> int | None:
    """The server process of the app's LISTEN connection, if it has one now."""
    from mschat.store.postgres.store import LISTEN_NAME

    rows = sql(
        services.store,
        "SELECT pid FROM pg_stat_activity WHERE application_name = ? "
        "AND datname = current_database()",
        [LISTEN_NAME],
    )
    assert len(rows) <= 1
    return rows[0][0] if rows else None


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_dropped_listen_connection_comes_back_and_refreshes_everything(
    services: Services, other: SessionManager
):
    me = await services.manager.local_user()
    session = await services.manager.create_session(me, title="Before")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        reply = await asyncio.to_thread(
            other.store.add_reply, session.id, "fake/fake-model", stamp(timedelta(minutes=5))
        )
        await wait_for(pilot, lambda: reply.id in app.chat.views, what="the remote reply")
        pid = listener_pid(services)
        assert pid is not None

        def rename_silently() -> None:  # as if its notice were lost
            with other.store.write() as conn:
                conn.execute("SET LOCAL session_replication_role = replica")  # type: ignore[attr-defined]
                other.store.update_session(session.id, title="Renamed unnoticed")

        await asyncio.to_thread(rename_silently)
        await asyncio.to_thread(other.store.update_message, reply.id, content="noticed")
        await wait_for(pilot, lambda: shown(app)[-1:] == ["noticed"], what="a later notice")
        assert app.sidebar.sessions[0].title == "Before"  # the rename went unnoticed

        sql(services.store, "SELECT pg_terminate_backend(?)", [pid])
        await wait_for(
            pilot,
            lambda: app.sidebar.sessions[0].title == "Renamed unnoticed",
            what="the full refresh after reconnecting",
        )
        assert await eventually(lambda: listener_pid(services) not in (None, pid))
        await asyncio.to_thread(other.store.update_message, reply.id, content="still live")
        await wait_for(pilot, lambda: shown(app)[-1:] == ["still live"], what="notices again")
