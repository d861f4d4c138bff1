"""Several mschat instances on one database: managers with stores of their own, and
worker processes (``python -m tests.multi.worker``) started together."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mschat.core.events import Event
from mschat.core.manager import SessionManager
from mschat.core.services import Services
from mschat.providers.registry import Registry
from mschat.store import open_store
from tests.fakes.scripted_provider import ScriptedProvider


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    """Every event of an ask."""
    return [event async for event in events]


def instance(services: Services, provider: object | None = None, **settings: Any) -> SessionManager:
    """Another instance on the same database: its own store (connections, pool),
    provider registry and manager, as another process would have."""
    registry = Registry(
        services.config,
        providers={"fake": provider or ScriptedProvider()},  # type: ignore[dict-item]
    )
    return SessionManager(open_store(services.config.db), registry, **settings)


@asynccontextmanager
async def instances(
    services: Services, count: int, **settings: Any
) -> AsyncIterator[list[SessionManager]]:
    """``count`` instances, closed after the block."""
    managers = [instance(services, **settings) for _ in range(count)]
    try:
        yield managers
    finally:
        for manager in managers:
            await manager.aclose()


async def run_workers(db: str, *argv: list[str]) -> list[dict[str, Any]]:
    """Start one worker process per argument list, all on ``db``; once every one is
    ready, let them go at once. Their reports, in order."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.multi.worker",
            db,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for args in argv
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stderr is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            if line.strip() != b"ready":
                error = await process.stderr.read()
                raise AssertionError(f"a worker did not start: {line!r} {error.decode()}")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        reports = []
        for process in processes:
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
            reports.append(json.loads(out))
        return reports
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
