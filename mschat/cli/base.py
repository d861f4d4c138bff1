"""What every command shares: the --db context, building services, one-line errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click

from mschat.core.errors import MschatError

T = TypeVar("T")

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


class Context:
    """What the group passes to its commands: the --db override, lazily built services."""

    def __init__(self, db: str | None) -> None:
        self.db = db

    def services(self, *, server: bool = False, notice: bool = False) -> Any:
        """Load the config and open the store (errors become one-line messages).

        ``server``: a long-running aiohttp front end, whose provider requests then go
        through aiohttp too (half the CPU of httpx's own stack per streamed reply).
        ``notice``: the command talks to a model, so say on stderr when it is the
        bundled offline one.
        """
        from mschat.config import load_config
        from mschat.core.services import build_services

        transport = None
        if server:
            from mschat.aiohttp_transport import AiohttpTransport

            transport = AiohttpTransport
        services = build_services(load_config(db=self.db), async_transport=transport)
        if notice and services.registry.using_bundled:
            click.echo(services.registry.bundled_notice(), err=True)
        return services


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print a one-line error on stderr and exit."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def run_async(ctx: Context, body: Callable[[Any], Awaitable[T]], *, notice: bool = False) -> T:
    """Build services, run ``body(services)`` on an event loop, close them, map errors.

    ``notice``: the command talks to a model, so say which when it is the bundled one.
    """

    async def main() -> T:
        services = ctx.services(notice=notice)
        try:
            return await body(services)
        finally:
            await services.aclose()

    try:
        return asyncio.run(main())
    except MschatError as error:
        fail(str(error))
    except KeyboardInterrupt:
        click.echo("\nInterrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)


class MschatGroup(click.Group):
    """Translates mschat errors into one-line messages and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MschatError as error:
            fail(str(error))
