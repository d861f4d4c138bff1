"""The effective configuration written back as a config.toml (``mschat config show``).

Only the value types mschat's keys use are written: strings, integers, finite
floats, booleans and lists of these. Strings are TOML basic strings with every
control character escaped, so the output is valid TOML and safe on a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mschat.config import Config

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
#: C0, DEL, C1, and lone surrogates (not Unicode scalar values: TOML cannot hold them)
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\ud800-\udfff]')


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if "\ud800" <= char <= "\udfff":
        return "\\uFFFD"
    return f"\\u{ord(char):04X}"


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string, control characters escaped."""
    return '"' + _UNSAFE.sub(_escape, text) + '"'


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: Any) -> str:
    """A TOML value for a string, number, boolean or list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }" if value else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _table(
    header: str,
    values: dict[str, Any],
    secrets: Collection[str] = (),
    origins: Mapping[str, str] | None = None,
) -> list[str]:
    lines = ["", header]
    for key, value in values.items():
        if value is None:
            continue
        notes = ["masked"] if value and key in secrets else []
        source = (origins or {}).get(key, "")
        if source.startswith(("MSCHAT_", "DISCORD_")):
            notes.append(f"from {source}")
        line = f"{toml_key(key)} = {toml_value(value)}"
        lines.append(f"{line}  # {', '.join(notes)}" if notes else line)
    return lines


def render_config(config: Config) -> str:
    """``config``'s settings, secrets and URL credentials masked, as a config file."""
    from mschat.config import PROVIDER_KEYS, SECTIONS

    data = config.masked()
    lines = [
        "# mschat settings in effect (config file and environment), secrets masked",
        f"# file: {toml_string(str(config.file))}",
        f"# database: {toml_string(config.db_shown)}",
    ]
    for section, keys in SECTIONS.items():
        secrets = {key for key, spec in keys.items() if spec.secret}
        origins = {
            key: config.origins[f"{section}.{key}"]
            for key in keys
            if f"{section}.{key}" in config.origins
        }
        lines += _table(f"[{toml_key(section)}]", data[section], secrets, origins)
    provider_secrets = {key for key, spec in PROVIDER_KEYS.items() if spec.secret}
    for name, entry in data["providers"].items():
        entry = dict(entry)
        notes = ["API key set" if entry.pop("key_set") else "no API key"]
        source = entry.pop("source")
        if source != "config":
            notes.append(f"defined by the {source}")
        header = f"[providers.{toml_key(name)}]  # {', '.join(notes)}"
        lines += _table(header, entry, provider_secrets)
    for section in ("aliases", "context_windows"):
        if data[section]:
            lines += _table(f"[{section}]", data[section])
    for name, price in data["prices"].items():
        lines += _table(f"[prices.{toml_key(name)}]", price)
    for name, keys in data["models"].items():
        lines += _table(f"[models.{toml_key(name)}]", keys)
    for name, entry in data["mcp"]["servers"].items():
        lines += _table(f"[mcp.servers.{toml_key(name)}]", entry)
    return "\n".join(lines) + "\n"
