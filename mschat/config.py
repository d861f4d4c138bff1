"""Settings from ``config.toml`` plus environment variables, and mschat's paths.

Every key of a section can be set by ``MSCHAT_<SECTION>_<KEY>``; provider keys by
``MSCHAT_PROVIDERS_<NAME>_<KEY>``. ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` define
an ``openai`` provider when the file defines none. Any other ``MSCHAT_*`` variable
is a likely typo: it is reported in ``Config.warnings`` with the closest known name.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mschat.core.errors import ConfigError
from mschat.redact import redact_url

CONFIG_FILE = "config.toml"
DB_FILE = "mschat.db"
STATE_FILE = "state.json"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


# ---- paths -------------------------------------------------------------------


def home_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The MSCHAT_HOME directory, if set."""
    env = os.environ if env is None else env
    home = env.get("MSCHAT_HOME")
    return Path(home).expanduser() if home else None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where config.toml lives (MSCHAT_CONFIG, MSCHAT_HOME or the user config dir)."""
    env = os.environ if env is None else env
    if env.get("MSCHAT_CONFIG"):
        return Path(env["MSCHAT_CONFIG"]).expanduser()
    home = home_dir(env)
    if home is not None:
        return home / CONFIG_FILE
    import platformdirs

    return Path(platformdirs.user_config_dir("mschat")) / CONFIG_FILE


def db_path(env: Mapping[str, str] | None = None) -> Path:
    """The default database file (in MSCHAT_HOME or the user data dir)."""
    return data_dir(env) / DB_FILE


def database(given: str | Path | None, configured: str | None, env: Mapping[str, str]) -> str:
    """The database's path or URL: ``--db``, else MSCHAT_DB, else ``database.url``,
    else the default file. A path has its ``~`` expanded; a URL is kept as written.
    """
    from mschat.store.location import is_url

    for value in (given, env.get("MSCHAT_DB"), configured):
        if value:
            text = str(value)
            return text if is_url(text) else str(Path(text).expanduser())
    return str(db_path(env))


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where mschat keeps its data (MSCHAT_HOME or the user data dir)."""
    home = home_dir(env)
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir("mschat"))


def state_path(env: Mapping[str, str] | None = None) -> Path:
    """Where remembered choices live (last session, theme, notices seen, model lists)."""
    return data_dir(env) / STATE_FILE


# ---- value parsers -----------------------------------------------------------


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("an integer")
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            raise ValueError("an integer")
        return int(value)
    if not isinstance(value, int):
        raise ValueError("an integer")
    return value


def _positive_int(value: Any) -> int:
    try:
        number = _int(value)
    except ValueError:
        raise ValueError("a positive integer") from None
    if number <= 0:
        raise ValueError("a positive integer")
    return number


def _non_negative_int(value: Any) -> int:
    try:
        number = _int(value)
    except ValueError:
        raise ValueError("an integer ≥ 0") from None
    if number < 0:
        raise ValueError("an integer ≥ 0")
    return number


def _port(value: Any) -> int:
    try:
        number = _int(value)
    except ValueError:
        raise ValueError("a port number from 1 to 65535") from None
    if not 1 <= number <= 65535:
        raise ValueError("a port number from 1 to 65535")
    return number


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("a number")
    return float(value)


def _positive_float(value: Any) -> float:
    try:
        number = _float(value)
    except ValueError:
        raise ValueError("a number > 0") from None
    if number <= 0:
        raise ValueError("a number > 0")
    return number


def _non_negative_float(value: Any) -> float:
    number = _float(value)
    if number < 0:
        raise ValueError("a number ≥ 0")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("true or false")


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of strings")
    return value


def _id_list(value: Any) -> list[int]:
    items = _str_list(value) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("a list of ids")
    try:
        return [_int(item) for item in items]
    except ValueError:
        raise ValueError("a list of numeric ids") from None


def _shard_ids(value: Any) -> list[int]:
    try:
        ids = _id_list(value)
    except ValueError:
        raise ValueError("a list of shard numbers") from None
    if any(i < 0 for i in ids):
        raise ValueError("a list of shard numbers ≥ 0")
    return ids


def _ids_or_star(value: Any) -> list[int] | str:
    if value == "*" or value == ["*"]:
        return "*"
    try:
        return _id_list(value)
    except ValueError:
        raise ValueError('a list of channel ids or "*"') from None


def _listen(value: Any) -> str:
    """``HOST:PORT``, ``[IPv6]:PORT`` or a bare ``PORT`` (then on 127.0.0.1); port 0: any."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError("HOST:PORT, e.g. 127.0.0.1:5001")
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"


def _hex_key(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("64 hex digits (the application's public key)")
    return text


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise ValueError("one of " + ", ".join(repr(o) for o in options))
        return value.lower()

    return parse


def _temperature(value: Any) -> float:
    number = _float(value)
    if not 0 <= number <= 2:
        raise ValueError("a number from 0 to 2")
    return number


@dataclass(frozen=True)
class Key:
    """One configuration key: its parser, default, and whether it is secret."""

    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False
    #: a URL that may carry credentials (user info, ``?api_key=``): shown redacted
    url: bool = False


LOG_LEVELS = ("debug", "info", "warning", "error")

SECTIONS: dict[str, dict[str, Key]] = {
    "general": {
        "default_model": Key(_str, None, "model used when none is chosen (name or alias)"),
        "user_name": Key(_str, None, "name of the local terminal user (default: login name)"),
        "log_level": Key(_choice(*LOG_LEVELS), "warning", "log level of the CLI and servers"),
        "currency": Key(_str, "USD", "currency of the [prices] table, shown after costs"),
    },
    "defaults": {
        "max_tokens": Key(_positive_int, 600, "max_tokens of new users"),
        "temperature": Key(_temperature, 0.8, "temperature of new users"),
        "system_msg": Key(_str, None, "default system message of new users"),
        "context_window": Key(_positive_int, 8192, "context window of unknown models"),
        "one_question_at_a_time": Key(
            _bool, False, "refuse a user's question while another of theirs is answered"
        ),
        "rate_limit": Key(
            _positive_int, None, "questions per 6 hours of new users (unset: no limit)"
        ),
    },
    "discord": {
        "token": Key(_str, None, "bot token (or DISCORD_TOKEN)", secret=True),
        "guild_ids": Key(_id_list, [], "guilds to sync commands to at once"),
        "qa_channels": Key(_ids_or_star, [], 'channels answered in Q&A mode, or "*"'),
        "api_base": Key(_str, None, "REST base of a Discord-compatible server", url=True),
        "gateway_url": Key(_str, None, "gateway URL of a Discord-compatible server", url=True),
        "edit_interval": Key(_non_negative_float, 1.0, "seconds between streaming edits"),
        "default_status": Key(
            _choice("disabled", "new", "active"), "disabled", "status of new Discord members"
        ),
        "log_level": Key(_choice(*LOG_LEVELS), "info", "log level of the bot"),
        "shard_count": Key(
            _positive_int, None, "shards of the whole bot (runs it sharded; unset: one connection)"
        ),
        "shard_ids": Key(
            _shard_ids, [], "shards this process serves (default: all of shard_count)"
        ),
        "interactions_listen": Key(
            _listen, None, "HOST:PORT of the signed HTTP interactions endpoint (unset: off)"
        ),
        "public_key": Key(
            _hex_key, None, "the application's public key (hex): checks the endpoint's requests"
        ),
    },
    "api": {
        "host": Key(_str, "127.0.0.1", "address serve-api binds to"),
        "port": Key(_port, 5000, "port serve-api listens on"),
        "token": Key(_str, None, "bearer token required by serve-api", secret=True),
        "max_body": Key(_positive_int, 1_048_576, "largest request body in bytes"),
        "default_user": Key(_str, "api", "user of /v1 requests without a user field"),
        "cors_origins": Key(_str_list, [], 'browser origins allowed to call the API, or "*"'),
        "allowed_hosts": Key(
            _str_list, [], "Host header names accepted besides loopback and the bound address"
        ),
    },
    "admin": {
        "host": Key(_str, "127.0.0.1", "address serve-admin binds to"),
        "port": Key(_port, 5003, "port serve-admin listens on"),
        "token": Key(_str, None, "token (password) of serve-admin's login page", secret=True),
        "allowed_hosts": Key(
            _str_list, [], "Host header names serve-admin accepts besides loopback and its address"
        ),
    },
    "feedback": {
        "enabled": Key(_bool, True, "feedback buttons (with counts) under Discord answers"),
    },
    "logs": {
        "retention_days": Key(
            _non_negative_int,
            90,
            "days interactions and API calls are kept (0: forever); servers prune daily",
        ),
    },
    "queue": {
        "size": Key(_positive_int, None, "questions that may wait for a slot (unset: no limit)"),
        "max_age": Key(
            _positive_float, None, "seconds a question may wait for a slot (unset: no limit)"
        ),
        "paused": Key(_bool, False, "answering paused (mschat ops pause / resume)"),
        "when_paused": Key(
            _choice("reject", "hold"), "reject", "new questions while paused: reject or hold"
        ),
    },
    "database": {
        "url": Key(
            _str,
            None,
            "database: a file path, sqlite:///PATH or postgresql://USER@HOST/DB (or MSCHAT_DB)",
            url=True,
        ),
    },
    "attachments": {
        "max_bytes": Key(_positive_int, 10 * 1024 * 1024, "largest file a question may carry"),
        "max_count": Key(_positive_int, 10, "most files one question may carry"),
        "fetch_private": Key(
            _bool, False, "fetch files from URLs of private and local addresses too"
        ),
    },
    "moderation": {
        "model": Key(_str, None, "moderation model checking questions and answers (unset: off)"),
        "provider": Key(
            _str, None, "provider of its /moderations endpoint (default: openai or the first)"
        ),
    },
    "tools": {
        "max_rounds": Key(
            _positive_int, 8, "tool-call rounds of one answer before the model must answer"
        ),
        "max_result_chars": Key(
            _positive_int, 20_000, "characters of a tool result the model gets (the rest is cut)"
        ),
    },
}

PROVIDER_KEYS: dict[str, Key] = {
    "type": Key(_choice("openai", "local"), "openai", "openai (any compatible server) or local"),
    "base_url": Key(_str, None, "the server's /v1 URL", url=True),
    "api_key": Key(_str, None, "API key (prefer api_key_env)", secret=True),
    "api_key_env": Key(_str, None, "name of the environment variable holding the key"),
    "models": Key(_str_list, [], "models this provider offers (first is its default)"),
    "timeout": Key(_positive_float, 60.0, "seconds to wait for the server"),
    "max_retries": Key(_non_negative_int, 3, "retries on 429, 5xx, timeouts, connection errors"),
    "context_window": Key(_positive_int, None, "context window of this provider's models"),
    "path": Key(_str, None, "GGUF model file (type = local)"),
    "n_ctx": Key(_positive_int, None, "context size to load a local model with"),
    "n_threads": Key(_positive_int, None, "CPU threads of a local model"),
    "max_concurrency": Key(
        _positive_int, None, "answers this provider writes at once (unset: no limit)"
    ),
    "vision": Key(_bool, None, "its models see images (unset: known model families only)"),
    "tools": Key(
        _bool,
        None,
        "its models take tool calls (default: OpenAI's gpt-4o, gpt-4.1, gpt-5, o-series)",
    ),
}

#: keys of a ``[models."provider/name"]`` table: what one model can do
MODEL_KEYS: dict[str, Key] = {
    "vision": Key(_bool, None, "the model sees images (overrides its provider's vision)"),
    "tools": Key(_bool, None, "the model takes tool calls (overrides its provider's tools)"),
}


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError('a table of strings, e.g. { NAME = "value" }')
    return dict(value)


def _tool_names(value: Any) -> list[str]:
    try:
        names = _str_list(value)
    except ValueError:
        raise ValueError('a list of tool names, or "*" for all') from None
    return names


#: keys of an ``[mcp.servers.NAME]`` table (a stdio ``command`` or a Streamable HTTP ``url``)
MCP_SERVER_KEYS: dict[str, Key] = {
    "command": Key(_str, None, "program that runs a stdio MCP server"),
    "args": Key(_str_list, [], "its arguments"),
    "env": Key(_str_map, {}, "environment variables for it (values masked in config show)"),
    "cwd": Key(_str, None, "its working directory"),
    "url": Key(_str, None, "URL of a Streamable HTTP MCP server", url=True),
    "headers": Key(_str_map, {}, "HTTP headers sent to it (values masked in config show)"),
    "enabled": Key(_bool, True, "offer this server's tools to models"),
    "allow": Key(_tool_names, [], 'tools the terminal user runs without being asked ("*": all)'),
    "deny": Key(_tool_names, [], 'tools never run, for anyone ("*": all)'),
    "remote_allow": Key(
        _tool_names, [], 'tools Discord and API users may run ("*": all; else per-user grants)'
    ),
    "timeout": Key(_positive_float, 30.0, "seconds one tool call may take"),
}
#: server keys whose values are secrets inside a table (shown masked)
MCP_MASKED_MAPS = ("env", "headers")

MAP_SECTIONS = {
    "aliases": (_str, 'alias = "provider/model"'),
    "context_windows": (_positive_int, "model = tokens"),
}


@dataclass
class ProviderConfig:
    """One named provider."""

    name: str
    type: str = "openai"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    models: list[str] = field(default_factory=list)
    timeout: float = 60.0
    max_retries: int = 3
    context_window: int | None = None
    path: str | None = None
    n_ctx: int | None = None
    n_threads: int | None = None
    max_concurrency: int | None = None
    vision: bool | None = None
    tools: bool | None = None
    source: str = "config"

    def __repr__(self) -> str:
        # a repr ends up in logs and tracebacks: no secret keys, URLs redacted
        shown = []
        for item in fields(self):
            spec = PROVIDER_KEYS.get(item.name)
            if not item.repr or (spec is not None and spec.secret):
                continue
            value = getattr(self, item.name)
            if spec is not None and spec.url and isinstance(value, str):
                value = redact_url(value)
            shown.append(f"{item.name}={value!r}")
        return f"ProviderConfig({', '.join(shown)})"

    def resolve_key(self, env: Mapping[str, str]) -> str | None:
        """The API key: the literal one, else the named environment variable."""
        if self.api_key:
            return self.api_key
        if self.api_key_env:
            return env.get(self.api_key_env)
        return None


@dataclass
class McpServerConfig:
    """One ``[mcp.servers.NAME]`` table: how to reach the server and who may run its tools."""

    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    enabled: bool = True
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    remote_allow: list[str] = field(default_factory=list)
    timeout: float = 30.0

    def shown(self) -> dict[str, Any]:
        """The table as ``config show`` prints it: env and header values masked."""
        entry: dict[str, Any] = {}
        for key, spec in MCP_SERVER_KEYS.items():
            value = getattr(self, key)
            if value is None or (key in (*MCP_MASKED_MAPS, "args") and not value):
                continue
            if key in MCP_MASKED_MAPS:
                value = {k: _mask(v) for k, v in value.items()}
            entry[key] = _shown(spec, value)
        return entry


@dataclass
class Config:
    """Every setting mschat reads, after file and environment are merged."""

    file: Path
    #: the database's path or URL, as given (a URL may hold a password: show ``db_shown``)
    db: str
    sections: dict[str, dict[str, Any]]
    providers: dict[str, ProviderConfig]
    aliases: dict[str, str]
    context_windows: dict[str, int]
    env: Mapping[str, str] = field(repr=False, default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    #: one line per questionable setting (e.g. a misspelt MSCHAT_* variable)
    warnings: list[str] = field(default_factory=list)
    #: ``provider/model`` -> {"input": ..., "output": ...} per million tokens ([prices])
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``provider/model`` -> its ``[models."provider/model"]`` keys (``MODEL_KEYS``)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the ``[mcp.servers.NAME]`` tables, by name
    mcp_servers: dict[str, McpServerConfig] = field(default_factory=dict)

    def __repr__(self) -> str:
        # sections hold tokens: never let a repr (logs, tracebacks) show them
        providers = list(self.providers)
        return f"Config(file={str(self.file)!r}, db={self.db_shown!r}, providers={providers})"

    @property
    def db_shown(self) -> str:
        """The database's path, or its URL with the password masked (for display)."""
        from mschat.store.location import shown

        return shown(self.db)

    def get(self, section: str, key: str) -> Any:
        """A setting's value (default included)."""
        return self.sections[section][key]

    @property
    def default_model(self) -> str | None:
        """The configured default model, if any."""
        return self.sections["general"]["default_model"]

    def masked(self) -> dict[str, Any]:
        """Everything, with secrets and credentials inside URLs masked (``config show``)."""
        data: dict[str, Any] = {}
        for section, keys in self.sections.items():
            data[section] = {k: _shown(SECTIONS[section][k], v) for k, v in keys.items()}
        # the database in effect (--db, MSCHAT_DB, the file or the default), password masked
        data["database"]["url"] = self.db_shown
        data["providers"] = {}
        for name, provider in self.providers.items():
            entry = {
                k: _shown(spec, getattr(provider, k))
                for k, spec in PROVIDER_KEYS.items()
                if getattr(provider, k) is not None
            }
            key = provider.resolve_key(self.env)
            entry["key_set"] = bool(key)
            entry["source"] = provider.source
            data["providers"][name] = entry
        data["aliases"] = dict(self.aliases)
        data["context_windows"] = dict(self.context_windows)
        data["prices"] = {name: dict(price) for name, price in self.prices.items()}
        data["models"] = {name: dict(keys) for name, keys in self.models.items()}
        data["mcp"] = {"servers": {n: s.shown() for n, s in self.mcp_servers.items()}}
        return data

    def masked_toml(self) -> str:
        """The effective configuration as a config.toml, secrets masked (``config show``)."""
        from mschat.config_toml import render_config

        return render_config(self)


def _mask(value: Any) -> Any:
    if not value:
        return value
    text = str(value)
    return "****" + text[-4:] if len(text) > 12 else "****"


def _shown(spec: Key, value: Any) -> Any:
    """A value as ``config show`` may print it."""
    if spec.secret:
        return _mask(value)
    if spec.url and isinstance(value, str):
        return redact_url(value)
    return value


def _parse(file: Path | str, where: str, key: Key, value: Any) -> Any:
    try:
        return key.parse(value)
    except ValueError as exc:
        shown = "(hidden)" if key.secret else repr(value)
        raise ConfigError(f"{file}: {where} must be {exc}, got {shown}") from None


def _read_file(path: Path, *, required: bool = False) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"MSCHAT_CONFIG names {path}, which does not exist "
                "(create it, or unset MSCHAT_CONFIG to use the default place)"
            ) from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    file: Path | None = None,
    db: Path | str | None = None,
) -> Config:
    """Read config.toml and the environment; raise ConfigError naming the bad key."""
    env = dict(os.environ if env is None else env)
    required = file is None and bool(env.get("MSCHAT_CONFIG"))
    file = file or config_path(env)
    data = _read_file(file, required=required)
    origins: dict[str, str] = {}

    known = set(SECTIONS) | set(MAP_SECTIONS) | {"providers", "prices", "models", "mcp"}
    for name, value in data.items():
        if name not in known:
            raise ConfigError(
                f"{file}: unknown section or key {name!r}; expected one of "
                + ", ".join(sorted(known))
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: {name!r} must be a table ([{name}])")

    sections = _load_sections(file, data, env, origins)
    providers = _load_providers(file, data.get("providers", {}), env)
    maps = {name: _load_map(file, name, data.get(name, {}), env) for name in MAP_SECTIONS}
    return Config(
        file=file,
        db=database(db, sections["database"]["url"], env),
        sections=sections,
        providers=providers,
        aliases=maps["aliases"],
        context_windows=maps["context_windows"],
        env=env,
        origins=origins,
        warnings=unknown_variables(env),
        prices=_load_prices(file, data.get("prices", {}), env),
        models=_load_models(file, data.get("models", {})),
        mcp_servers=_load_mcp(file, data.get("mcp", {})),
    )


def _load_mcp(file: Path, given: dict[str, Any]) -> dict[str, McpServerConfig]:
    """``[mcp.servers.NAME]`` tables; each needs a ``command`` or a ``url``, not both."""
    unknown = sorted(set(given) - {"servers"})
    if unknown:
        raise ConfigError(f"{file}: unknown key mcp.{unknown[0]}; expected mcp.servers.NAME")
    servers = given.get("servers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f"{file}: mcp.servers must be tables like [mcp.servers.files]")
    result: dict[str, McpServerConfig] = {}
    for name, keys in servers.items():
        where = f"mcp.servers.{name}"
        if not isinstance(keys, dict):
            raise ConfigError(f"{file}: {where} must be a table ([{where}])")
        if not name.replace("-", "").replace("_", "").isalnum() or not name.isascii():
            raise ConfigError(
                f"{file}: {where}: a server name must be letters, digits, - and _ "
                f"(it prefixes its tools' names), got {name!r}"
            )
        for key in keys:
            if key not in MCP_SERVER_KEYS:
                raise ConfigError(
                    f"{file}: unknown key {where}.{key}; expected one of "
                    + ", ".join(sorted(MCP_SERVER_KEYS))
                )
        values = {
            key: _parse(file, f"{where}.{key}", MCP_SERVER_KEYS[key], value)
            for key, value in keys.items()
        }
        if bool(values.get("command")) == bool(values.get("url")):
            raise ConfigError(
                f"{file}: {where} needs either command (a stdio server) or url "
                "(a Streamable HTTP server), not both"
            )
        result[name] = McpServerConfig(name=name, **values)
    return result


def _load_sections(
    file: Path, data: dict[str, Any], env: Mapping[str, str], origins: dict[str, str]
) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for section, keys in SECTIONS.items():
        given = data.get(section, {})
        for key in given:
            if key not in keys:
                raise ConfigError(
                    f"{file}: unknown key {section}.{key}; expected one of "
                    + ", ".join(sorted(keys))
                )
        values: dict[str, Any] = {}
        for key, spec in keys.items():
            env_name = f"MSCHAT_{section.upper()}_{key.upper()}"
            if env_name in env:
                values[key] = _parse(f"environment variable {env_name}", key, spec, env[env_name])
                origins[f"{section}.{key}"] = env_name
            elif key in given:
                values[key] = _parse(file, f"{section}.{key}", spec, given[key])
                origins[f"{section}.{key}"] = str(file)
            else:
                values[key] = spec.default
        sections[section] = values
    # conventional shortcuts
    if "MSCHAT_DISCORD_TOKEN" not in env and env.get("DISCORD_TOKEN"):
        sections["discord"]["token"] = env["DISCORD_TOKEN"]
        origins["discord.token"] = "DISCORD_TOKEN"
    if "MSCHAT_GENERAL_DEFAULT_MODEL" not in env and env.get("MSCHAT_MODEL"):
        sections["general"]["default_model"] = env["MSCHAT_MODEL"]
        origins["general.default_model"] = "MSCHAT_MODEL"
    return sections


def _load_providers(file: Path, given: Any, env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    if not isinstance(given, dict):
        raise ConfigError(f"{file}: providers must be tables like [providers.openai]")
    raw: dict[str, dict[str, Any]] = {}
    for name, keys in given.items():
        if not isinstance(keys, dict):
            raise ConfigError(f"{file}: providers.{name} must be a table ([providers.{name}])")
        for key in keys:
            if key not in PROVIDER_KEYS:
                raise ConfigError(
                    f"{file}: unknown key providers.{name}.{key}; expected one of "
                    + ", ".join(sorted(PROVIDER_KEYS))
                )
        raw[name] = {
            key: _parse(file, f"providers.{name}.{key}", PROVIDER_KEYS[key], value)
            for key, value in keys.items()
        }
    # MSCHAT_PROVIDERS_<NAME>_<KEY>: the longest known key suffix wins
    prefix = "MSCHAT_PROVIDERS_"
    for env_name, value in env.items():
        if not env_name.startswith(prefix):
            continue
        rest = env_name[len(prefix) :]
        for key in sorted(PROVIDER_KEYS, key=len, reverse=True):
            suffix = "_" + key.upper()
            if rest.endswith(suffix) and len(rest) > len(suffix):
                name = rest[: -len(suffix)].lower()
                raw.setdefault(name, {})[key] = _parse(
                    f"environment variable {env_name}", key, PROVIDER_KEYS[key], value
                )
                break
        else:
            raise ConfigError(
                f"environment variable {env_name}: expected MSCHAT_PROVIDERS_<NAME>_<KEY> "
                "with KEY one of " + ", ".join(k.upper() for k in PROVIDER_KEYS)
            )
    providers = {name: ProviderConfig(name=name, **values) for name, values in raw.items()}
    for provider in providers.values():
        if provider.type == "openai" and not provider.base_url:
            if provider.name == "openai":
                provider.base_url = env.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
            else:
                raise ConfigError(
                    f"{file}: providers.{provider.name}.base_url is required "
                    '(e.g. base_url = "http://localhost:11434/v1")'
                )
        if (
            provider.type == "openai"
            and provider.name == "openai"
            and not (provider.api_key or provider.api_key_env)
        ):
            provider.api_key_env = "OPENAI_API_KEY"
    if not any(p.type == "openai" for p in providers.values()) and (
        env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL")
    ):
        providers["openai"] = ProviderConfig(
            name="openai",
            base_url=env.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL,
            api_key_env="OPENAI_API_KEY",
            source="environment",
        )
    return providers


def _load_map(file: Path, name: str, given: Any, env: Mapping[str, str]) -> dict[str, Any]:
    parse, expected = MAP_SECTIONS[name]
    result: dict[str, Any] = {}
    for key, value in given.items():
        try:
            result[key] = parse(value)
        except ValueError as exc:
            raise ConfigError(
                f"{file}: {name}.{key} must be {exc} ({expected}), got {value!r}"
            ) from None
    prefix = f"MSCHAT_{name.upper()}_"
    for env_name, value in env.items():
        if env_name.startswith(prefix):
            key = env_name[len(prefix) :].lower()
            try:
                result[key] = parse(value)
            except ValueError as exc:
                raise ConfigError(f"environment variable {env_name} must be {exc}") from None
    return result


PRICE_KEYS = ("input", "output")


def _price(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("a table like { input = 2.5, output = 10.0 }")
    unknown = sorted(set(value) - set(PRICE_KEYS))
    if unknown:
        raise ValueError(f"a table of input and output only (not {unknown[0]!r})")
    missing = [key for key in PRICE_KEYS if key not in value]
    if missing:
        raise ValueError(f"a table with {missing[0]} (per million tokens)")
    try:
        return {key: _non_negative_float(value[key]) for key in PRICE_KEYS}
    except ValueError as exc:
        raise ValueError(f"a table of prices, each {exc}") from None


def _load_prices(file: Path, given: Any, env: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """``[prices."provider/model"]`` tables, then ``MSCHAT_PRICES`` (a JSON object) over them."""
    entries: list[tuple[str, str, Any]] = [
        (str(file), f'prices."{name}"', value) for name, value in given.items()
    ]
    if env.get("MSCHAT_PRICES"):
        import json

        try:
            loaded = json.loads(env["MSCHAT_PRICES"])
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            raise ConfigError(
                "environment variable MSCHAT_PRICES must be a JSON object like "
                '{"openai/gpt-4o": {"input": 2.5, "output": 10}}'
            )
        entries += [
            ("environment variable MSCHAT_PRICES", f'"{name}"', value)
            for name, value in loaded.items()
        ]
    prices: dict[str, dict[str, float]] = {}
    for where, key, value in entries:
        name = key.removeprefix("prices.").strip('"')
        if "/" not in name:
            raise ConfigError(f'{where}: {key} must be named "provider/model"')
        try:
            prices[name] = _price(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key} must be {exc}") from None
    return prices


def _load_models(file: Path, given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``[models."provider/name"]`` tables: what a model can do (``vision``, ``tools``)."""
    models: dict[str, dict[str, Any]] = {}
    for name, keys in given.items():
        if "/" not in name:
            raise ConfigError(f'{file}: models."{name}" must be named "provider/model"')
        if not isinstance(keys, dict):
            raise ConfigError(f'{file}: models."{name}" must be a table ([models."{name}"])')
        for key, value in keys.items():
            if key not in MODEL_KEYS:
                raise ConfigError(
                    f'{file}: unknown key models."{name}".{key}; expected one of '
                    + ", ".join(sorted(MODEL_KEYS))
                )
            models.setdefault(name, {})[key] = _parse(
                file, f'models."{name}".{key}', MODEL_KEYS[key], value
            )
    return models


#: variables read outside the sections (paths, shortcuts): code that reads a new
#: MSCHAT_* name adds it here, or users who set it are told it is unknown
OTHER_VARIABLES = ("MSCHAT_HOME", "MSCHAT_CONFIG", "MSCHAT_DB", "MSCHAT_MODEL", "MSCHAT_PRICES")
#: prefixes whose variables are parsed (or refused) by ``load_config`` itself
VARIABLE_PREFIXES = tuple(f"MSCHAT_{name.upper()}_" for name in ("providers", *MAP_SECTIONS))


def known_variables() -> list[str]:
    """Every fixed MSCHAT_* name mschat reads (prefixed families excluded)."""
    names = list(OTHER_VARIABLES)
    for section, keys in SECTIONS.items():
        names += [f"MSCHAT_{section.upper()}_{key.upper()}" for key in keys]
    return names


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One warning per MSCHAT_* variable mschat does not read, with the closest name."""
    known = known_variables()
    unknown = sorted(
        name
        for name in env
        if name.startswith("MSCHAT_")
        and name not in known
        and not name.startswith(VARIABLE_PREFIXES)
    )
    if not unknown:
        return []
    import difflib

    # compared without the common "MSCHAT_", which would make every name look close
    suffixes = {name.removeprefix("MSCHAT_"): name for name in known}
    warnings = []
    for name in unknown:
        close = difflib.get_close_matches(name.removeprefix("MSCHAT_"), list(suffixes), n=1)
        hint = f"did you mean {suffixes[close[0]]}?" if close else "mschat does not read it"
        warnings.append(f"unknown environment variable {name}: {hint}")
    return warnings


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, environment variable, help) for every key: the README's table."""
    rows = []
    for section, keys in SECTIONS.items():
        for key, spec in keys.items():
            rows.append((f"{section}.{key}", f"MSCHAT_{section.upper()}_{key.upper()}", spec.help))
    for key, spec in PROVIDER_KEYS.items():
        rows.append((f"providers.NAME.{key}", f"MSCHAT_PROVIDERS_NAME_{key.upper()}", spec.help))
    return rows
