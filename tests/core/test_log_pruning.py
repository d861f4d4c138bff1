"""Operations logs older than ``logs.retention_days`` are pruned at once and then daily;
``mschat logs`` reads them (admin only)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from mschat.core.errors import InvalidInput, PermissionDenied
from mschat.core.services import Services
from tests.conftest import eventually

OLD = "2020-01-01T00:00:00.000000+00:00"


async def logged(services: Services, count: int = 1) -> None:
    """Old rows in both pruned logs."""
    store = services.store

    def write() -> None:
        for _ in range(count):
            store.add_interaction(source="discord", kind="message", payload={}, created=OLD)
            store.add_api_call(status="ok", started=OLD)

    await asyncio.to_thread(write)


async def sizes(services: Services) -> tuple[int, int]:
    store = services.store
    return (
        len(await asyncio.to_thread(store.list_log, "interactions", limit=1000)),
        len(await asyncio.to_thread(store.list_log, "api_calls", limit=1000)),
    )


async def test_pruning_runs_at_once_and_again_each_period(services: Services):
    manager = services.manager
    await logged(services, 2)
    manager.keep_logs_pruned(30, every=timedelta(seconds=0.05))
    manager.keep_logs_pruned(30)  # already running: nothing more
    await eventually(lambda: empty(services))
    await logged(services)  # old rows written later go at the next round
    await eventually(lambda: empty(services))


async def empty(services: Services) -> bool:
    return await sizes(services) == (0, 0)


async def test_retention_zero_keeps_everything(services: Services):
    await logged(services)
    assert await services.manager.prune_logs(0) == {}
    services.manager.keep_logs_pruned(0)
    assert await sizes(services) == (1, 1)
    assert await services.manager.prune_logs(1) == {"interactions": 1, "api_calls": 1}


async def test_reading_the_logs_is_for_admins(services: Services):
    manager = services.manager
    bob = await manager.user("discord", "2", "bob")
    with pytest.raises(PermissionDenied):
        await manager.list_log(bob, "interactions")
    me = await manager.local_user()
    with pytest.raises(InvalidInput):
        await manager.list_log(me, "users")
    assert await manager.list_log(me, "feedback") == []
