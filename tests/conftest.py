"""Shared fixtures: an isolated MSCHAT_HOME, a scripted provider, built services."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.fakes.scripted_provider import ScriptedProvider

_PROVIDER_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DISCORD_TOKEN", "MSCHAT_CONFIG", "MSCHAT_DB")


async def eventually(condition: Any, timeout: float = 10.0) -> Any:
    """Poll an async or sync condition until it is truthy (never a bare sleep)."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def mschat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own MSCHAT_HOME and no provider settings from outside."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("MSCHAT_") or name in _PROVIDER_ENV:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MSCHAT_HOME", str(home))
    monkeypatch.setenv("MSCHAT_GENERAL_USER_NAME", "tester")
    yield home


@pytest.fixture
def provider() -> ScriptedProvider:
    """The scripted in-process provider, registered as 'fake'."""
    return ScriptedProvider("fake")


def write_config(home: Path, text: str) -> Path:
    """Write config.toml into MSCHAT_HOME."""
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def fake_model_config(home: Path, base_url: str, extra: str = "") -> Path:
    """A config.toml whose default model, fake/fake-model, is served at ``base_url``.

    ``extra`` adds keys to ``[providers.fake]``.
    """
    return write_config(
        home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{base_url}"\nmodels = ["fake-model"]\n{extra}',
    )


@pytest.fixture
def fake_thread() -> Iterator[FakeOpenAIThread]:
    """The fake OpenAI-compatible server on its own thread, for tests of real processes."""
    with FakeOpenAIThread(chunk_size=5) as server:
        yield server


@pytest.fixture
async def services(mschat_home: Path, provider: ScriptedProvider) -> AsyncIterator[Services]:
    """Services over a fresh database with the scripted provider as default model."""
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model", "other"]\n'
        '[context_windows]\n"fake-model" = 4096\n',
    )
    built = build_services(load_config(), providers={"fake": provider})
    yield built
    await built.aclose()
