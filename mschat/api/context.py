"""Typed application keys: what every handler finds on ``request.app``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from mschat.core.services import Services


@dataclass(frozen=True)
class ApiSettings:
    """The server's own settings (the token never appears in a repr)."""

    token: str | None
    max_body: int
    default_user: str
    cors_origins: tuple[str, ...] = ()
    #: Host header names accepted besides loopback and the connection's own address
    allowed_hosts: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return (
            f"ApiSettings(token={'set' if self.token else 'unset'}, max_body={self.max_body}, "
            f"default_user={self.default_user!r})"
        )


SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", ApiSettings)
#: tasks running a handler right now (shutdown waits for their cancellation to finish)
IN_FLIGHT = web.AppKey("in_flight", set)


def services_of(request: web.Request) -> Services:
    """The core's services this application was built with."""
    return request.app[SERVICES]


def settings_of(request: web.Request) -> ApiSettings:
    """The server's settings."""
    return request.app[SETTINGS]
