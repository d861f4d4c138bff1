"""Build the core's services from the configuration (front ends receive them)."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mschat.config import Config, load_config
from mschat.core.answer import recover_replies
from mschat.core.errors import ConfigError, MschatError, PermissionDenied
from mschat.core.live import LiveSettings
from mschat.core.manager import SessionManager
from mschat.core.models import User
from mschat.providers.base import Provider
from mschat.providers.registry import Registry, TransportFactory
from mschat.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a front end needs: the config, the store, the manager, the live settings."""

    config: Config
    store: Store
    registry: Registry
    manager: SessionManager
    live: LiveSettings

    def __repr__(self) -> str:
        return f"Services({self.config!r}, store={self.store!r})"

    def reload_config(self) -> bool:
        """Re-read config.toml (SIGHUP): keys read at use time apply; a bad file is one line.

        A bad file keeps the settings in effect. The database, providers, listening
        address, tokens and shards are those of the start (a restart changes them).
        """
        try:
            fresh = load_config(self.config.env, file=self.config.file, db=self.config.db)
        except ConfigError as exc:
            log.error("config not re-read, the settings in effect are kept: %s", exc)
            return False
        self.live.rebase(fresh)
        log.info("config re-read from %s", self.config.file)
        return True

    def reload_on_sighup(self) -> None:
        """Re-read config.toml whenever the process gets SIGHUP (the servers)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload_config)

    async def set_paused(self, actor: User, paused: bool) -> str:
        """Admin: pause (or resume) answering on every instance; returns ``queue.when_paused``.

        Paused, running answers finish and new questions are refused (or wait, with
        ``queue.when_paused = hold``); every instance applies it within a second.
        """
        if not actor.admin:
            raise PermissionDenied(
                f"only an admin may pause or resume answering ({actor.name} is not one)"
            )
        if paused:
            await asyncio.to_thread(self.live.set, "queue.paused", True, actor.name)
        else:
            await asyncio.to_thread(self.live.unset, "queue.paused")
        return str(self.live.get("queue.when_paused"))

    async def aclose(self) -> None:
        """Stop watching the settings; stop MCP servers; close providers and the database."""
        self.live.close()
        if self.manager.tools is not None:
            await self.manager.tools.aclose()
        await self.manager.aclose()


def manager_defaults(config: Config) -> dict[str, Any]:
    """What the manager gives new users (and applies to questions), from the settings."""
    return {
        "max_tokens": config.get("defaults", "max_tokens"),
        "temperature": config.get("defaults", "temperature"),
        "system_msg": config.get("defaults", "system_msg"),
        "rate_limit": config.get("defaults", "rate_limit"),
        "discord_status": config.get("discord", "default_status"),
        "one_question_at_a_time": config.get("defaults", "one_question_at_a_time"),
    }


def build_services(
    config: Config | None = None,
    *,
    db: str | Path | None = None,
    providers: dict[str, Provider] | None = None,
    store: Store | None = None,
    async_transport: TransportFactory | None = None,
    upgrade: bool = True,
) -> Services:
    """Open the store and wire the manager; tests pass fakes in.

    ``async_transport``: a factory of httpx async transports, from a long-running
    front end (bot, API) that streams many replies at once and brings a cheaper one.
    ``upgrade=False`` (the servers, unless told): a database at an older schema is
    refused with one line instead of upgraded; a blank one is still created.
    The live settings are read once here; long-running front ends call
    ``services.live.start()`` to follow their changes.
    """
    config = config or load_config(db=db)
    store = store or open_store(db or config.db, upgrade=upgrade)
    recover_replies(store)  # every process, at start: replies of dead writers
    live = LiveSettings(config, store)
    try:
        live.refresh()
    except MschatError as exc:  # e.g. a read-only copy without the table: config.toml's values
        log.warning("live settings not read: %s", exc)
    registry = Registry(config, providers=providers, async_transport=async_transport)
    manager = SessionManager(
        store,
        registry,
        defaults=manager_defaults(config),
        local_user_name=config.get("general", "user_name"),
    )
    live.on_change(lambda settings: manager.defaults.update(manager_defaults(settings.config)))
    if config.mcp_servers:
        from mschat.core.tools.toolbox import Toolbox

        manager.use_tools(Toolbox(config))
    return Services(config=config, store=store, registry=registry, manager=manager, live=live)
