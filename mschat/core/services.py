"""Build the core's services from the configuration (front ends receive them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mschat.config import Config, load_config
from mschat.core.answer import recover_replies
from mschat.core.manager import SessionManager
from mschat.providers.base import Provider
from mschat.providers.registry import Registry, TransportFactory
from mschat.store import Store, open_store


@dataclass
class Services:
    """Everything a front end needs: the config, the store and the manager."""

    config: Config
    store: Store
    registry: Registry
    manager: SessionManager

    def __repr__(self) -> str:
        return f"Services({self.config!r}, store={self.store!r})"

    async def aclose(self) -> None:
        """Close providers and the database."""
        await self.manager.aclose()


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
    """
    config = config or load_config(db=db)
    store = store or open_store(db or config.db, upgrade=upgrade)
    recover_replies(store)  # every process, at start: replies of dead writers
    registry = Registry(config, providers=providers, async_transport=async_transport)
    defaults = {
        "max_tokens": config.get("defaults", "max_tokens"),
        "temperature": config.get("defaults", "temperature"),
        "system_msg": config.get("defaults", "system_msg"),
        "discord_status": config.get("discord", "default_status"),
        "one_question_at_a_time": config.get("defaults", "one_question_at_a_time"),
    }
    manager = SessionManager(
        store,
        registry,
        defaults=defaults,
        local_user_name=config.get("general", "user_name"),
    )
    return Services(config=config, store=store, registry=registry, manager=manager)
