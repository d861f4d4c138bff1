"""Configuration: file + environment, masking, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mschat.config import describe_keys, load_config
from mschat.core.errors import ConfigError, NotFound, ProviderError
from mschat.providers.registry import Registry
from tests.conftest import write_config


def test_no_file_and_no_env_gives_defaults(mschat_home: Path):
    config = load_config({"MSCHAT_HOME": str(mschat_home)})
    assert config.file == mschat_home / "config.toml"
    assert config.db == mschat_home / "mschat.db"
    assert config.providers == {}
    assert config.get("api", "host") == "127.0.0.1"
    assert config.get("defaults", "max_tokens") == 600


def test_openai_environment_variables_work_without_a_file(mschat_home: Path):
    env = {"MSCHAT_HOME": str(mschat_home), "OPENAI_API_KEY": "sk-secret-value-123456"}
    config = load_config(env)
    provider = config.providers["openai"]
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.resolve_key(config.env) == "sk-secret-value-123456"
    resolved = Registry(config, allow_bundled=False).resolve(None)
    assert resolved.full_name == "openai/gpt-4o-mini"
    env["OPENAI_BASE_URL"] = "http://localhost:11434/v1"
    assert load_config(env).providers["openai"].base_url == "http://localhost:11434/v1"


def test_file_and_environment_overrides(mschat_home: Path):
    write_config(
        mschat_home,
        """
[general]
default_model = "fast"
[providers.ollama]
base_url = "http://localhost:11434/v1"
models = ["llama3.2", "qwen2.5"]
[aliases]
fast = "ollama/llama3.2"
[context_windows]
"llama3.2" = 131072
[discord]
token = "file-token-abcdefghijkl"
qa_channels = "*"
""",
    )
    env = {
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DISCORD_EDIT_INTERVAL": "0.5",
        "MSCHAT_API_PORT": "8080",
        "MSCHAT_PROVIDERS_OLLAMA_TIMEOUT": "5",
        "MSCHAT_DISCORD_GUILD_IDS": "1,2",
    }
    config = load_config(env)
    assert config.get("discord", "edit_interval") == 0.5
    assert config.get("discord", "guild_ids") == [1, 2]
    assert config.get("discord", "qa_channels") == "*"
    assert config.get("api", "port") == 8080
    assert config.providers["ollama"].timeout == 5.0
    registry = Registry(config, allow_bundled=False)
    resolved = registry.resolve(None)
    assert (resolved.full_name, resolved.context_window) == ("ollama/llama3.2", 131072)
    assert registry.resolve("qwen2.5").full_name == "ollama/qwen2.5"
    with pytest.raises(NotFound, match="mschat models"):
        registry.resolve("gpt-9")
    masked = config.masked()
    assert masked["discord"]["token"] != "file-token-abcdefghijkl"
    assert "file-token" not in repr(config.masked())
    assert "secret" not in repr(config.providers)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[general\n", "invalid TOML"),
        ("[general]\ncolour = 1\n", "unknown key general.colour"),
        ("[nonsense]\nx = 1\n", "unknown section or key 'nonsense'"),
        ('[api]\nport = "eighty"\n', "api.port must be a positive integer"),
        ("[defaults]\ntemperature = 5\n", "defaults.temperature must be a number from 0 to 2"),
        ("[providers.x]\nbase_url = 1\n", "providers.x.base_url must be a string"),
        ('[providers.x]\nmodels = ["a"]\n', "providers.x.base_url is required"),
        ('[providers.x]\nbase_url = "http://h"\nspeed = 1\n', "unknown key providers.x.speed"),
        ('[discord]\nqa_channels = ["general"]\n', 'list of channel ids or "*"'),
    ],
)
def test_bad_config_names_file_key_and_expectation(mschat_home: Path, text: str, message: str):
    path = write_config(mschat_home, text)
    with pytest.raises(ConfigError) as info:
        load_config({"MSCHAT_HOME": str(mschat_home)})
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_bad_environment_value_names_the_variable(mschat_home: Path):
    with pytest.raises(ConfigError, match="MSCHAT_API_PORT"):
        load_config({"MSCHAT_HOME": str(mschat_home), "MSCHAT_API_PORT": "x"})
    with pytest.raises(ConfigError, match="MSCHAT_PROVIDERS_FOO"):
        load_config({"MSCHAT_HOME": str(mschat_home), "MSCHAT_PROVIDERS_FOO": "x"})


def test_secret_values_are_not_echoed_in_errors(mschat_home: Path):
    write_config(mschat_home, "[api]\ntoken = 12345\n")
    with pytest.raises(ConfigError) as info:
        load_config({"MSCHAT_HOME": str(mschat_home)})
    assert "12345" not in str(info.value)


def test_no_provider_error_says_both_ways_out(mschat_home: Path):
    config = load_config({"MSCHAT_HOME": str(mschat_home)})
    with pytest.raises(ProviderError) as info:
        Registry(config, allow_bundled=False).resolve(None)
    text = str(info.value)
    assert "OPENAI_API_KEY" in text and "mschat[local]" in text


def test_every_key_is_described():
    rows = describe_keys()
    assert ("discord.token", "MSCHAT_DISCORD_TOKEN") in {(r[0], r[1]) for r in rows}
    assert all(r[2] for r in rows)


def test_no_secret_in_any_repr(mschat_home: Path):
    from mschat.core.services import build_services

    env = {
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DISCORD_TOKEN": "discord-secret-token-1",
        "MSCHAT_API_TOKEN": "api-secret-token-2",
        "OPENAI_API_KEY": "sk-openai-secret-3",
    }
    config = load_config(env)
    services = build_services(config)
    try:
        texts = [repr(config), repr(services), repr(services.registry.provider("openai"))]
        for secret in ("discord-secret-token-1", "api-secret-token-2", "sk-openai-secret-3"):
            assert not any(secret in text for text in texts)
    finally:
        services.store.close()
