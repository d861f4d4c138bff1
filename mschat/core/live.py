"""Live settings: a few keys stored in the database override config.toml while set.

``mschat config set KEY VALUE`` stores a value (JSON text in the ``settings``
table); every running instance notices it through the store's change feed
(NOTIFY on PostgreSQL, ``data_version`` on SQLite) and applies it within a
second, without a restart. Values are checked by the same parsers as the config
file's. The effective values are written into the running ``Config``'s sections,
so every ``config.get`` made at use time sees them; listeners
(:meth:`LiveSettings.on_change`) apply what is not read at use time (log levels,
the manager's defaults for new users).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from mschat.config import SECTIONS, Config, Key
from mschat.core.errors import ConfigError
from mschat.store import Store
from mschat.store.contract import ChangeFeed, SettingRow

log = logging.getLogger(__name__)

#: the settings ``mschat config set`` may change while mschat runs: adding one is one line
LIVE_KEYS = (
    "general.log_level",
    "discord.log_level",
    "defaults.rate_limit",
    "defaults.one_question_at_a_time",
    "discord.default_status",
    "feedback.enabled",
    "queue.size",
    "queue.max_age",
    "queue.paused",
    "queue.when_paused",
)

#: how often SQLite's change counter is read (PostgreSQL pushes its notices)
POLL_INTERVAL = 0.25


def live_key(name: str) -> Key:
    """The definition of a live setting; ConfigError listing the live ones otherwise."""
    if name not in LIVE_KEYS:
        raise ConfigError(f"{name} is not a live setting; live settings: {', '.join(LIVE_KEYS)}")
    section, key = name.split(".", 1)
    return SECTIONS[section][key]


def parse_value(name: str, value: Any) -> Any:
    """A live setting's value checked like the config file's; ConfigError in one line."""
    spec = live_key(name)
    try:
        return spec.parse(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {exc}, got {value!r}") from None


class LiveSettings:
    """The live settings of one instance: read at start, kept up to date by a watcher thread."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        #: the values of config.toml and the environment, under the stored ones
        self._base = {name: self._section(name)[name.split(".", 1)[1]] for name in LIVE_KEYS}
        self._rows: dict[str, SettingRow] = {}
        self._listeners: list[Callable[[LiveSettings], None]] = []
        self._lock = threading.RLock()
        self._feed: ChangeFeed | None = None
        self._thread: threading.Thread | None = None

    def _section(self, name: str) -> dict[str, Any]:
        return self.config.sections[name.split(".", 1)[0]]

    def get(self, name: str) -> Any:
        """A live setting's value in effect (the database's, else config.toml's)."""
        return self._section(name)[name.split(".", 1)[1]]

    def stored(self) -> dict[str, SettingRow]:
        """The settings the database holds now, by key."""
        return dict(self._rows)

    def base(self, name: str) -> Any:
        """What config.toml (or the environment, or the default) says of a live setting."""
        return self._base[name]

    def on_change(self, callback: Callable[[LiveSettings], None]) -> None:
        """Call ``callback(self)`` now and after every change of a value in effect."""
        with self._lock:
            self._listeners.append(callback)
            callback(self)

    # ---- changing them -------------------------------------------------------

    def set(self, name: str, value: Any, updated_by: str | None) -> Any:
        """Check and store a value (applied here at once, elsewhere within a second)."""
        parsed = parse_value(name, value)
        self.store.set_setting(name, json.dumps(parsed), updated_by)
        self.refresh()
        return parsed

    def unset(self, name: str) -> bool:
        """Remove a stored value (config.toml's applies again); whether there was one."""
        live_key(name)
        removed = self.store.unset_setting(name)
        self.refresh()
        return removed

    # ---- keeping them up to date ----------------------------------------------

    def refresh(self) -> None:
        """Read the stored values and apply those that changed."""
        rows = {row.key: row for row in self.store.settings()}
        with self._lock:
            self._rows = rows
            self._apply()

    def rebase(self, config: Config) -> None:
        """Take a re-read config.toml's values (SIGHUP); stored values still win."""
        with self._lock:
            before = {name: self.get(name) for name in LIVE_KEYS}
            for section, values in config.sections.items():
                self.config.sections.setdefault(section, {}).update(values)
            self.config.origins.clear()
            self.config.origins.update(config.origins)
            self.config.aliases.clear()
            self.config.aliases.update(config.aliases)
            self.config.context_windows.clear()
            self.config.context_windows.update(config.context_windows)
            self._base = {name: self._section(name)[name.split(".", 1)[1]] for name in LIVE_KEYS}
            # the file may have changed keys that are not live (new users' max_tokens)
            self._apply(before, listeners=True)

    def _apply(self, before: dict[str, Any] | None = None, *, listeners: bool = False) -> None:
        """Write the values in effect into the config; tell the listeners if any changed."""
        before = before if before is not None else {name: self.get(name) for name in LIVE_KEYS}
        for name in LIVE_KEYS:
            value = self._base[name]
            row = self._rows.get(name)
            if row is not None:
                try:
                    value = parse_value(name, json.loads(row.value))
                except (ConfigError, ValueError) as exc:  # written by hand, or by a newer mschat
                    log.warning("live setting ignored: %s", exc)
            self._section(name)[name.split(".", 1)[1]] = value
        changed = [name for name in LIVE_KEYS if self.get(name) != before[name]]
        if not changed and not listeners:
            return
        for callback in self._listeners:
            callback(self)
        for name in changed:
            source = "the database" if name in self._rows else "the config"
            log.info("live setting %s = %s (from %s)", name, json.dumps(self.get(name)), source)

    def start(self, poll_interval: float = POLL_INTERVAL) -> None:
        """Watch the database for changes in a thread of its own (long-running front ends)."""
        if self._thread is not None:
            return
        self._feed = self.store.changes(poll_interval)
        self._thread = threading.Thread(target=self._watch, name="mschat-settings", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        feed = self._feed
        assert feed is not None
        while not feed.closed:
            changes = feed.wait()
            if any(change.table in (None, "settings") for change in changes):
                try:
                    self.refresh()
                except Exception as exc:  # the database is away: the feed reports its return
                    log.warning("live settings not read: %s", exc)

    def close(self) -> None:
        """Stop watching."""
        if self._feed is not None:
            self._feed.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
