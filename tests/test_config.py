"""Configuration: file + environment, masking, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mschat.config import PROVIDER_KEYS, SECTIONS, describe_keys, load_config
from mschat.core.errors import ConfigError, NotFound, ProviderError
from mschat.providers.registry import Registry
from tests.conftest import write_config


def test_no_file_and_no_env_gives_defaults(mschat_home: Path):
    config = load_config({"MSCHAT_HOME": str(mschat_home)})
    assert config.file == mschat_home / "config.toml"
    assert config.db == str(mschat_home / "mschat.db")
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
        ('[api]\nport = "eighty"\n', "api.port must be a port number from 1 to 65535"),
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


# ---- hardening: one line naming the file or key ------------------------------


def test_config_file_that_is_not_utf8_names_the_file(mschat_home: Path):
    path = mschat_home / "config.toml"
    path.write_bytes(b'[general]\nuser_name = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config({"MSCHAT_HOME": str(mschat_home)})
    message = str(info.value)
    assert str(path) in message and "not UTF-8" in message and "(byte 0xe9 on line 2)" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[api]\nport = 0\n", "api.port must be a port number from 1 to 65535, got 0"),
        ("[api]\nport = 65536\n", "api.port must be a port number from 1 to 65535, got 65536"),
        ("[api]\nport = -80\n", "api.port must be a port number from 1 to 65535, got -80"),
        (
            '[providers.x]\nbase_url = "http://h/v1"\ntimeout = 0\n',
            "providers.x.timeout must be a number > 0, got 0",
        ),
        (
            '[providers.x]\nbase_url = "http://h/v1"\ntimeout = -1.5\n',
            "providers.x.timeout must be a number > 0, got -1.5",
        ),
        (
            '[providers.x]\nbase_url = "http://h/v1"\ntimeout = inf\n',
            "providers.x.timeout must be a number > 0, got inf",
        ),
        (
            '[providers.x]\nbase_url = "http://h/v1"\nmax_retries = -1\n',
            "providers.x.max_retries must be an integer ≥ 0, got -1",
        ),
        ("[discord]\nedit_interval = nan\n", "discord.edit_interval must be a number, got nan"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(mschat_home: Path, text: str, message: str):
    path = write_config(mschat_home, text)
    with pytest.raises(ConfigError) as info:
        load_config({"MSCHAT_HOME": str(mschat_home)})
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MSCHAT_API_PORT", "70000", "a port number from 1 to 65535"),
        ("MSCHAT_PROVIDERS_X_TIMEOUT", "0", "a number > 0"),
        ("MSCHAT_PROVIDERS_X_MAX_RETRIES", "-3", "an integer ≥ 0"),
    ],
)
def test_out_of_range_environment_values_name_the_variable(
    mschat_home: Path, name: str, value: str, message: str
):
    env = {"MSCHAT_HOME": str(mschat_home), "MSCHAT_PROVIDERS_X_BASE_URL": "http://h/v1"}
    with pytest.raises(ConfigError) as info:
        load_config({**env, name: value})
    assert f"environment variable {name}" in str(info.value)
    assert message in str(info.value)


def test_boundary_values_are_accepted(mschat_home: Path):
    write_config(
        mschat_home,
        '[api]\nport = 65535\n[providers.x]\nbase_url = "http://h/v1"\n'
        "timeout = 0.5\nmax_retries = 0\n",
    )
    config = load_config({"MSCHAT_HOME": str(mschat_home)})
    assert config.get("api", "port") == 65535
    assert (config.providers["x"].timeout, config.providers["x"].max_retries) == (0.5, 0)
    assert (
        load_config({"MSCHAT_HOME": str(mschat_home), "MSCHAT_API_PORT": "1"}).get("api", "port")
        == 1
    )


def test_mschat_config_naming_a_missing_file_is_an_error(mschat_home: Path, tmp_path: Path):
    missing = tmp_path / "nowhere" / "mschat.toml"
    with pytest.raises(ConfigError) as info:
        load_config({"MSCHAT_HOME": str(mschat_home), "MSCHAT_CONFIG": str(missing)})
    assert str(info.value).startswith(f"MSCHAT_CONFIG names {missing}, which does not exist")
    # the default place may well have no file
    assert not (mschat_home / "config.toml").exists()
    assert load_config({"MSCHAT_HOME": str(mschat_home)}).providers == {}


def test_mschat_config_naming_a_file_reads_it(mschat_home: Path, tmp_path: Path):
    path = tmp_path / "elsewhere.toml"
    path.write_text("[api]\nport = 8081\n", encoding="utf-8")
    config = load_config({"MSCHAT_HOME": str(mschat_home), "MSCHAT_CONFIG": str(path)})
    assert (config.file, config.get("api", "port")) == (path, 8081)


def test_unknown_mschat_variable_warns_with_the_closest_name(mschat_home: Path):
    env = {
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_API_PROT": "8080",
        "MSCHAT_DISCORD_TOKNE": "secret-value-not-shown",
        "MSCHAT_ZZZ": "1",
    }
    config = load_config(env)
    assert config.warnings == [
        "unknown environment variable MSCHAT_API_PROT: did you mean MSCHAT_API_PORT?",
        "unknown environment variable MSCHAT_DISCORD_TOKNE: did you mean MSCHAT_DISCORD_TOKEN?",
        "unknown environment variable MSCHAT_ZZZ: mschat does not read it",
    ]
    assert config.get("api", "port") == 5000


def test_known_mschat_variables_do_not_warn(mschat_home: Path, tmp_path: Path):
    path = write_config(mschat_home, "")
    env = {
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_CONFIG": str(path),
        "MSCHAT_DB": str(tmp_path / "x.db"),
        "MSCHAT_MODEL": "fast",
        "MSCHAT_GENERAL_USER_NAME": "me",
        "MSCHAT_API_ALLOWED_HOSTS": "example.org",
        "MSCHAT_PROVIDERS_OLLAMA_BASE_URL": "http://localhost:11434/v1",
        "MSCHAT_ALIASES_FAST": "ollama/llama3.2",
        "MSCHAT_CONTEXT_WINDOWS_LLAMA3": "8192",
        "NOT_MSCHAT_API_PROT": "1",
    }
    assert load_config(env).warnings == []


def test_every_mschat_variable_the_repository_reads_is_known():
    """A variable read anywhere (code, tests, benches) must not be warned about."""
    import re

    from mschat.config import VARIABLE_PREFIXES, known_variables

    root = Path(__file__).resolve().parent.parent
    names: set[str] = set()
    for folder in ("mschat", "tests", "bench"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "test_config.py":
                continue  # this file spells wrong names on purpose
            names |= set(re.findall(r"\bMSCHAT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text("utf-8")))
    assert "MSCHAT_HOME" in names
    unknown = {
        name
        for name in names
        if name not in known_variables() and not name.startswith(VARIABLE_PREFIXES)
    }
    assert unknown == set()


# ---- config show: credentials in URLs, a valid config file -------------------


_URL_SECRETS = ("hunter2", "sekrit-query", "zzz-token", "gw-pass")


def _config_with_url_secrets(mschat_home: Path):
    write_config(
        mschat_home,
        """
[general]
default_model = "fast"
[discord]
token = "discord-token-abcdefghijkl"
api_base = "https://bot:gw-pass@discord.example/api?token=zzz-token"
gateway_url = "wss://gw.example/?access_token=zzz-token"
[providers.ollama]
base_url = "http://bob:hunter2@localhost:11434/v1?api_key=sekrit-query"
models = ["llama3.2"]
api_key = "sk-ollama-abcdefghijklmnop"
[aliases]
fast = "ollama/llama3.2"
""",
    )
    return load_config({"MSCHAT_HOME": str(mschat_home)})


def test_masked_hides_credentials_inside_urls(mschat_home: Path):
    config = _config_with_url_secrets(mschat_home)
    masked = config.masked()
    text = repr(masked)
    for secret in (*_URL_SECRETS, "discord-token-abcdefghijkl", "sk-ollama-abcdefghijklmnop"):
        assert secret not in text
    assert masked["providers"]["ollama"]["base_url"] == (
        "http://****@localhost:11434/v1?api_key=****"
    )
    assert masked["discord"]["api_base"] == "https://****@discord.example/api?token=****"
    assert masked["discord"]["gateway_url"] == "wss://gw.example/?access_token=****"
    # the settings themselves keep the real values
    assert config.providers["ollama"].base_url.startswith("http://bob:hunter2@")


def test_reprs_never_show_secrets(mschat_home: Path):
    config = _config_with_url_secrets(mschat_home)
    texts = [repr(config), repr(config.providers), str(config.providers["ollama"])]
    for secret in (*_URL_SECRETS, "sk-ollama-abcdefghijklmnop", "discord-token"):
        assert not any(secret in text for text in texts), secret
    assert "localhost:11434" in repr(config.providers["ollama"])


def test_masked_toml_is_a_valid_config_file(mschat_home: Path, tmp_path: Path):
    import tomllib

    write_config(
        mschat_home,
        """
[general]
default_model = "fast"
[discord]
token = "discord-token-abcdefghijkl"
qa_channels = "*"
guild_ids = [1, 2]
api_base = "https://bot:gw-pass@discord.example/api"
[api]
cors_origins = ["https://a.example", "https://b.example"]
[providers.ollama]
base_url = "http://bob:hunter2@localhost:11434/v1"
models = ["llama3.2", "qwen2.5"]
timeout = 12.5
max_retries = 0
[providers."odd name.with dots"]
type = "local"
path = "/models/x.gguf"
n_ctx = 2048
[aliases]
fast = "ollama/llama3.2"
"with space" = "ollama/qwen2.5"
[context_windows]
"llama3.2" = 131072
""",
    )
    hostile = 'a "quoted" \\ line\nnext\ttab \x1b]52;c;aGk=\x07 \x9b2J \x7f end \U0001f600'
    env = {
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DEFAULTS_SYSTEM_MSG": hostile,
        "MSCHAT_API_TOKEN": "api-token-abcdefghijkl",
    }
    config = load_config(env)
    text = config.masked_toml()
    # nothing a terminal would obey; no secret
    assert not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)
    for secret in ("hunter2", "gw-pass", "discord-token-abcdefghijkl", "api-token-abcdefghijkl"):
        assert secret not in text
    assert "# from MSCHAT_DEFAULTS_SYSTEM_MSG" in text
    assert "token = " in text and "# masked" in text

    data = tomllib.loads(text)
    assert data["defaults"]["system_msg"] == hostile
    assert data["providers"]["odd name.with dots"] == {
        "type": "local",
        "models": [],
        "timeout": 60.0,
        "max_retries": 3,
        "path": "/models/x.gguf",
        "n_ctx": 2048,
    }
    assert "user_name" not in data["general"]  # None is left out
    assert data["aliases"] == {"fast": "ollama/llama3.2", "with space": "ollama/qwen2.5"}

    # loaded as a config file, it gives the same settings, except masked secrets
    shown = tmp_path / "shown.toml"
    shown.write_text(text, encoding="utf-8")
    again = load_config({"MSCHAT_HOME": str(mschat_home)}, file=shown)
    assert again.warnings == []
    for section, keys in config.sections.items():
        for key, value in keys.items():
            spec = SECTIONS[section][key]
            if not (spec.secret or spec.url):
                assert again.get(section, key) == value, (section, key)
    assert again.get("api", "token") == "****ijkl"
    assert again.get("discord", "api_base") == "https://****@discord.example/api"
    assert again.aliases == config.aliases
    assert again.context_windows == config.context_windows
    for name, provider in config.providers.items():
        for key, spec in PROVIDER_KEYS.items():
            if not (spec.secret or spec.url):
                assert getattr(again.providers[name], key) == getattr(provider, key)
    assert again.providers["ollama"].base_url == "http://****@localhost:11434/v1"


def test_masked_toml_of_the_openai_environment_provider_loads(mschat_home: Path, tmp_path: Path):
    config = load_config({"MSCHAT_HOME": str(mschat_home), "OPENAI_API_KEY": "sk-env-1234567890"})
    text = config.masked_toml()
    assert "[providers.openai]  # API key set, defined by the environment" in text
    assert "sk-env" not in text
    shown = tmp_path / "shown.toml"
    shown.write_text(text, encoding="utf-8")
    again = load_config({"MSCHAT_HOME": str(mschat_home)}, file=shown)
    assert again.providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert again.providers["openai"].base_url == "https://api.openai.com/v1"
