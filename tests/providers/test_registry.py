"""Model names: strict resolution, the server's model list, and the one list of models.

The fake server runs on its own thread: resolving a name may ask it, blocking.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.errors import NotFound, ProviderError
from mschat.core.events import Completed
from mschat.core.services import Services, build_services
from mschat.providers.registry import Registry
from mschat.state import State
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.providers.test_openai_compat import closed_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[FakeOpenAIThread]:
    """A fake serving two Ollama-like models, on its own thread."""
    with FakeOpenAIThread(models=["llama3.2", "qwen2.5"]) as fake:
        yield fake


def registry() -> Registry:
    """A registry as a new process builds it (nothing in memory)."""
    return Registry(load_config(), allow_bundled=False)


def age_cached_list(home: Path, provider: str, seconds: float) -> None:
    """Make the remembered model list of ``provider`` ``seconds`` old."""
    state = State(home / "state.json")
    entry = state.get(f"models/{provider}")
    entry["at"] = time.time() - seconds
    state.set(f"models/{provider}", entry)


def one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text
    return text


# ---- OPENAI_BASE_URL alone -----------------------------------------------------------


async def test_base_url_alone_uses_the_first_served_model_and_says_so_once(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch, mschat_home: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    services = build_services(load_config())
    try:
        resolved = services.manager.resolve_model(None)
        assert resolved.full_name == "openai/llama3.2"
        [notice] = services.registry.take_notices()
        assert "openai/llama3.2" in notice and server.base_url in notice and "\n" not in notice
        assert services.registry.take_notices() == []
        me = await services.manager.local_user()
        events = [e async for e in services.manager.ask(me, "Hello", new_session=True)]
        assert isinstance(events[-1], Completed)
        assert events[-1].message.content == "Echo: Hello"
        assert events[-1].message.model == "openai/llama3.2"
    finally:
        await services.aclose()
    assert len(server.model_calls) == 1
    assert "Authorization" not in server.model_calls[0].headers  # no key: none sent

    # the next process: the list comes from the state file, the notice was shown
    again = registry()
    assert again.resolve(None).full_name == "openai/llama3.2"
    assert again.take_notices() == [] and len(server.model_calls) == 1


async def test_the_notice_comes_back_when_the_choice_changes(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch, mschat_home: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    first = registry()
    first.resolve(None)
    first.take_notices()
    server.models = ["qwen2.5", "llama3.2"]
    later = registry()
    assert later.resolve(None).full_name == "openai/llama3.2"  # cached for an hour
    age_cached_list(mschat_home, "openai", 3700)
    assert registry().resolve(None).full_name == "openai/qwen2.5"
    newest = registry()
    newest.resolve(None)
    assert ["openai/qwen2.5" in line for line in newest.take_notices()] == [True]


async def test_list_models_refresh_asks_the_server_again(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch, mschat_home: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    services = build_services(load_config())
    try:
        names = [m.name for m in await services.manager.list_models()]
        assert names == ["openai/llama3.2", "openai/qwen2.5"]
        server.models = ["llama3.2", "qwen2.5", "phi4"]
        assert len(await services.manager.list_models()) == 2  # cached
        listed = await services.manager.list_models(refresh=True)
        assert [m.name for m in listed] == ["openai/llama3.2", "openai/qwen2.5", "openai/phi4"]
        assert [m.source for m in listed] == ["server"] * 3
        assert [m.default for m in listed] == [True, False, False]
    finally:
        await services.aclose()
    assert len(server.model_calls) == 2


def test_a_model_pulled_since_is_found_without_hammering_the_server(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch, mschat_home: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    assert registry().resolve("openai/llama3.2").model == "llama3.2"
    server.models = ["llama3.2", "qwen2.5", "phi4"]
    fresh = registry()
    with pytest.raises(NotFound):  # the list is seconds old: no second request
        fresh.resolve("phi4")
    assert len(server.model_calls) == 1
    age_cached_list(mschat_home, "openai", 120)
    assert registry().resolve("phi4").full_name == "openai/phi4"
    assert len(server.model_calls) == 2


@pytest.mark.parametrize("fault", ["no_endpoint", "unreachable"])
def test_a_server_that_cannot_list_its_models_gets_one_clear_line(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    url = server.base_url
    if fault == "unreachable":
        url = f"http://127.0.0.1:{closed_port()}/v1"
    server.serve_models = False
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-for-the-server")
    names = registry()
    with pytest.raises(ProviderError) as info:
        names.resolve(None)
    line = one_line(info.value)
    assert line.startswith("no model to use: ")
    assert url in line and "providers.openai.models" in line
    assert "MSCHAT_PROVIDERS_OPENAI_MODELS" in line
    assert ("no /models endpoint" if fault == "no_endpoint" else "connection refused") in line
    with pytest.raises(ProviderError) as info:
        names.resolve("openai/llama3.2")  # unchecked names are refused too
    assert "providers.openai.models" in one_line(info.value)
    calls = len(server.model_calls)
    with pytest.raises(ProviderError):
        names.resolve("llama3.2")  # a server that failed is not asked again at once
    assert len(server.model_calls) == calls

    # the way out the line names
    monkeypatch.setenv("MSCHAT_PROVIDERS_OPENAI_MODELS", "llama3.2")
    assert registry().resolve(None).full_name == "openai/llama3.2"
    assert len(server.model_calls) == calls


def test_a_known_list_outlives_a_server_that_went_away(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch, mschat_home: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    registry().resolve(None)
    age_cached_list(mschat_home, "openai", 7200)
    server.serve_models = False
    assert registry().resolve("qwen2.5").full_name == "openai/qwen2.5"


def test_the_servers_context_length_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOpenAIThread(models=["served"], model_contexts={"served": 32768}) as vllm:
        monkeypatch.setenv("OPENAI_BASE_URL", vllm.base_url)
        assert registry().resolve(None).context_window == 32768


# ---- strict names --------------------------------------------------------------------


async def test_unknown_names_are_refused_before_anything_is_stored(services: Services) -> None:
    manager = services.manager
    me = await manager.local_user()
    for name in ("fake/nope", "nope", "fake/fake-modle", "other/fake-model"):
        with pytest.raises(NotFound):
            manager.resolve_model(name)
    with pytest.raises(NotFound) as info:
        manager.resolve_model("fake/fake-modle")
    assert "did you mean fake/fake-model?" in one_line(info.value)
    with pytest.raises(NotFound):
        await manager.update_user(me, me.id, model="fake/nope")
    with pytest.raises(NotFound):
        [e async for e in manager.ask(me, "hi", model="fake/nope", new_session=True)]
    session = await manager.create_session(me, title="kept")
    with pytest.raises(NotFound):
        await manager.set_session_model(me, session.id, "fake/nope")
    assert (await manager.get_session(me, session.id)).model == "fake/fake-model"
    assert await manager.count_sessions(me) == 1
    assert manager.resolve_model("other").full_name == "fake/other"


def test_a_local_provider_serves_its_file_not_any_name(mschat_home: Path) -> None:
    write_config(
        mschat_home,
        '[providers.mine]\ntype = "local"\npath = "/models/Qwen2.5-0.5B.Q8_0.gguf"\n'
        '[aliases]\nsmall = "mine/Qwen2.5-0.5B.Q8_0"\nbroken = "mine/gpt-4o"\n',
    )
    names = registry()
    assert names.resolve("mine/Qwen2.5-0.5B.Q8_0").model == "Qwen2.5-0.5B.Q8_0"
    assert names.resolve("small").full_name == "mine/Qwen2.5-0.5B.Q8_0"
    with pytest.raises(NotFound, match="provider 'mine' does not offer 'anything'"):
        names.resolve("mine/anything")
    with pytest.raises(NotFound, match="an alias of 'mine/gpt-4o'"):
        names.resolve("broken")


def test_an_open_providers_unknown_name_is_refused_with_suggestions(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    with pytest.raises(NotFound) as info:
        registry().resolve("openai/llama3")
    assert "did you mean openai/llama3.2?" in one_line(info.value)


def test_the_official_default_needs_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    names = registry()
    assert names.resolve(None).full_name == "openai/gpt-4o-mini"
    assert names.resolve("openai/gpt-4o-mini").model == "gpt-4o-mini"


# ---- the one list -----------------------------------------------------------------------


async def test_list_models_has_every_usable_model_once(
    server: FakeOpenAIThread, mschat_home: Path
) -> None:
    server.model_contexts["qwen2.5"] = 32768
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fast"\n'
        '[providers.closed]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["a", "b"]\n'
        f'[providers.ollama]\nbase_url = "{server.base_url}"\n'
        '[providers.mine]\ntype = "local"\npath = "/models/tiny.gguf"\nn_ctx = 2048\n'
        '[aliases]\nfast = "ollama/qwen2.5"\nbroken = "closed/zzz"\n',
    )
    services = build_services(load_config())
    try:
        listed = await services.manager.list_models()
        assert services.registry.unlisted == {}
    finally:
        await services.aclose()
    shown = [(m.name, m.source, m.target, m.context_window, m.default) for m in listed]
    assert shown == [
        ("closed/a", "config", None, 8192, False),
        ("closed/b", "config", None, 8192, False),
        ("ollama/llama3.2", "server", None, 8192, False),
        ("ollama/qwen2.5", "server", None, 32768, True),
        ("mine/tiny", "local", None, 2048, False),
        ("fast", "alias", "ollama/qwen2.5", 32768, True),
    ]
    assert listed[4].extra == {"path": "/models/tiny.gguf"}


async def test_list_models_leaves_out_a_server_that_cannot_list(mschat_home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    write_config(
        mschat_home,
        f'[providers.down]\nbase_url = "{url}"\n'
        '[providers.closed]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["a"]\n',
    )
    services = build_services(load_config())
    try:
        listed = await services.manager.list_models(refresh=True)
        assert [m.name for m in listed] == ["closed/a"]
        reason = services.registry.unlisted["down"]
        assert "connection refused" in reason and "providers.down.models" in reason
    finally:
        await services.aclose()


# ---- the README's examples, and a cold ask ----------------------------------------------


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(title)
    return text[start : text.index("\n### ", start + 1)]


def run_ask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mschat", "ask", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_readmes_base_url_examples_work(mschat_home: Path) -> None:
    section = readme_section("### Ollama, vLLM, LM Studio")
    examples = re.findall(r"export OPENAI_BASE_URL=(\S+)\s+# (.+)", section)
    assert [server.split()[0] for _, server in examples] == ["Ollama", "vLLM", "LM", "llama.cpp"]
    command = re.search(r'^mschat ask "Hello"', section, re.M)
    assert command is not None
    for index, (url, server_name) in enumerate(examples):
        home = mschat_home / f"home{index}"
        home.mkdir()
        with FakeOpenAIThread(models=[f"model-of-{index}", "other"]) as fake:
            port = fake.base_url.split(":")[-1].split("/")[0]
            local_url = re.sub(r"localhost:\d+", f"127.0.0.1:{port}", url)
            env = {**os.environ, "MSCHAT_HOME": str(home), "OPENAI_BASE_URL": local_url}
            for _ in range(2):
                done = run_ask(env, "Hello")
                assert done.returncode == 0, (server_name, done.stderr)
                assert done.stdout.strip() == "Echo: Hello"
            assert len(fake.model_calls) == 1  # the second ask used the remembered list
            assert fake.requests[0]["model"] == f"model-of-{index}"


def test_the_readmes_config_example_works(mschat_home: Path) -> None:
    section = readme_section("### Ollama, vLLM, LM Studio")
    toml = re.search(r"```toml\n# config.toml\n(.*?)```", section, re.S)
    assert toml is not None
    with FakeOpenAIThread(models=["llama3.2", "qwen2.5"]) as fake:
        write_config(mschat_home, toml.group(1).replace("http://localhost:11434/v1", fake.base_url))
        env = {**os.environ, "MSCHAT_HOME": str(mschat_home)}
        done = run_ask(env, "Hello")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Echo: Hello"
        assert fake.requests[0]["model"] == "llama3.2"
        done = run_ask(env, "-m", "qwen2.5", "Hello")
        assert done.returncode == 0 and fake.requests[1]["model"] == "qwen2.5"
        assert fake.model_calls == []  # models are listed in the config: never asked
    names = registry()
    assert names.resolve("smart").full_name == "openrouter/anthropic/claude-3.5-sonnet"


def test_a_cold_ask_with_a_configured_model_asks_nothing_else(
    server: FakeOpenAIThread, mschat_home: Path
) -> None:
    write_config(
        mschat_home,
        f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["llama3.2"]\n',
    )
    code = (
        "import asyncio, json, sys\n"
        "from mschat.core.services import build_services\n"
        "services = build_services()\n"
        "async def main():\n"
        "    me = await services.manager.local_user()\n"
        "    [e async for e in services.manager.ask(me, 'hi', new_session=True)]\n"
        "    await services.aclose()\n"
        "asyncio.run(main())\n"
        "print(json.dumps('mschat.providers.discovery' in sys.modules))\n"
    )
    env = {**os.environ, "MSCHAT_HOME": str(mschat_home)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is False  # the model list machinery is not even imported
    assert [call.path for call in server.calls] == ["/v1/chat/completions"]


async def test_a_refresh_asks_again_right_after_a_failure(
    server: FakeOpenAIThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    server.serve_models = False
    services = build_services(load_config())
    try:
        assert await services.manager.list_models() == []
        server.serve_models = True
        assert await services.manager.list_models() == []  # a failed server rests a minute
        assert "openai" in services.registry.unlisted
        listed = await services.manager.list_models(refresh=True)
        assert [m.name for m in listed] == ["openai/llama3.2", "openai/qwen2.5"]
        assert services.registry.unlisted == {}
    finally:
        await services.aclose()
    assert len(server.model_calls) == 2
