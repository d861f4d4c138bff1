"""Fixtures of the provider tests: the fake OpenAI server and providers aimed at it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mschat.config import load_config
from mschat.core.services import Services, build_services
from mschat.providers.openai_compat import OpenAICompatProvider
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI

KEY = "sk-secret-test-key-123"
MakeProvider = Callable[..., OpenAICompatProvider]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    """A started fake server."""
    async with FakeOpenAI() as server:
        yield server


@pytest_asyncio.fixture(params=["httpx", "aiohttp"])
async def make(fake: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[MakeProvider]:
    """Build providers aimed at the fake (tiny backoff) and close them afterwards.

    Every async test runs over httpx's own transport and over the aiohttp one
    the servers use: both must raise the same errors.
    """
    made: list[OpenAICompatProvider] = []

    def factory(**options: object) -> OpenAICompatProvider:
        if request.param == "aiohttp":
            from mschat.aiohttp_transport import AiohttpTransport

            options.setdefault("async_transport", AiohttpTransport())
        options = {"base_url": fake.base_url, "api_key": KEY, "backoff_base": 0.01, **options}
        provider = OpenAICompatProvider("fake", **options)  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.aclose()


def fake_services(home: Path, base_url: str, extra: str = "") -> Services:
    """Services whose default model ``fake/fake-model`` is served at ``base_url``."""
    write_config(
        home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{base_url}"\nmodels = ["fake-model"]\n'
        f"max_retries = 1\n{extra}",
    )
    return build_services(load_config())


def rows(db: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows straight from the database file (what really got stored)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()
