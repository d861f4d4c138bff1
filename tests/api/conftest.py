"""Fixtures: the API application served on a real loopback socket, with a real client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from mschat.api.server import ApiRunner, make_api
from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI


@dataclass
class LiveApi:
    """A running API server: its URL, a client and the services behind it."""

    url: str
    client: httpx.AsyncClient
    services: Services


async def serve_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 at a free port; returns the runner and the base URL."""
    runner = ApiRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def live_api(services: Services, **options: Any) -> AsyncIterator[LiveApi]:
    """Serve make_api(services, **options) and yield it with an httpx client."""
    runner, url = await serve_app(make_api(services, **options))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            yield LiveApi(url, client, services)
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(services: Services) -> AsyncIterator[LiveApi]:
    """The API over the scripted provider, without a token."""
    async for live in live_api(services, token=""):
        yield live


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """The loopback fake OpenAI server (echoes the question)."""
    async with FakeOpenAI() as server:
        yield server


def fake_config(home: Path, base_url: str) -> None:
    """A config whose default model is served by the fake OpenAI server."""
    write_config(
        home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{base_url}"\nmodels = ["fake-model", "fake-large"]\n'
        "max_retries = 0\n",
    )


@pytest.fixture
async def fake_services(mschat_home: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Services]:
    """Services whose provider is the real httpx client talking to the fake server."""
    fake_config(mschat_home, fake_openai.base_url)
    built = build_services(load_config())
    yield built
    await built.aclose()


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """Parse a server-sent-events body into (event name, data) pairs."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:  # a block of only comments (": …") is no event
            events.append((name, "\n".join(data)))
    return events


def sse_json(text: str) -> list[tuple[str | None, Any]]:
    """Like sse_events, with JSON data decoded (``[DONE]`` stays a string)."""
    return [
        (name, data if data == "[DONE]" else json.loads(data)) for name, data in sse_events(text)
    ]
