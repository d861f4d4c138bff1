"""What every command shares: the --db context, building services, one-line messages.

Everything written on stderr goes through :func:`mschat.visible.visible`: error
texts quote providers, titles and names, which must never reach a terminal as
control sequences. An error is always one line.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from mschat.core.errors import MschatError
from mschat.visible import visible

if TYPE_CHECKING:
    from mschat.config import Config
    from mschat.core.services import Services

T = TypeVar("T")

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
#: remembered in the home's state once the bundled-model notice was shown
BUNDLED_NOTICE_SEEN = "notice.bundled_model"


def note(text: str) -> None:
    """Print a notice on stderr (control characters shown, never obeyed)."""
    click.echo(visible(text), err=True)


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print a one-line error on stderr and exit."""
    click.echo(f"Error: {visible(message, newlines=False)}", err=True)
    sys.exit(code)


class _StderrHandler(logging.Handler):
    """Log records as one visible line on the current stderr: they may quote provider errors."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"mschat: {visible(self.format(record), newlines=False)}", err=True)
        except Exception:
            self.handleError(record)


def setup_logging(level: str) -> None:
    """Print mschat's log records of ``level`` and above on stderr (one-shot commands).

    The servers and the TUI set up their own; this handler is added once per process.
    """
    logger = logging.getLogger("mschat")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        logger.addHandler(handler)
    handler.setLevel(level.upper())
    # only ever more verbose: a quieter logger would hide records from other handlers
    if logger.getEffectiveLevel() > handler.level:
        logger.setLevel(handler.level)


class Utf8Text(click.ParamType):
    """Text from the command line; bytes that are not UTF-8 become U+FFFD.

    Python hands such bytes over as lone surrogates, which the database refuses
    and no terminal can show; replacing them keeps the rest of the text.
    """

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The argument as valid Unicode."""
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


TEXT = Utf8Text()


class Context:
    """What the group passes to its commands: the --db override, lazily built services."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        self._config: Config | None = None

    def config(self) -> Config:
        """The merged configuration; its warnings are printed once per command."""
        if self._config is None:
            from mschat.config import load_config

            self._config = load_config(db=self.db)
            for warning in self._config.warnings:
                note(f"mschat: {warning}")
        return self._config

    def services(
        self, *, server: bool = False, notice: bool = False, upgrade: bool = True
    ) -> Services:
        """Load the config and open the store (errors become one-line messages).

        ``server``: a long-running aiohttp front end, whose provider requests then go
        through aiohttp too (half the CPU of httpx's own stack per streamed reply).
        ``notice``: the command talks to a model, so say on stderr when it is the
        bundled offline one. ``upgrade=False``: an outdated schema is refused.
        """
        from mschat.core.services import build_services

        config = self.config()
        transport = None
        if server:
            from mschat.aiohttp_transport import AiohttpTransport

            transport = AiohttpTransport
        services = build_services(config, async_transport=transport, upgrade=upgrade)
        if notice:
            bundled_notice_once(services)
        return services


def bundled_notice_once(services: Services) -> None:
    """Say on stderr that the bundled offline model answers, once per MSCHAT_HOME."""
    if not services.registry.using_bundled:
        return
    from mschat.state import State

    state = State.of_home(services.config.env)
    if state.get(BUNDLED_NOTICE_SEEN):
        return
    note(services.registry.bundled_notice())
    state.set(BUNDLED_NOTICE_SEEN, True)


def interrupted_notice() -> None:
    """What a command says when Ctrl-C or SIGTERM stops it."""
    click.echo("Interrupted.", err=True)


def run_async(
    ctx: Context,
    body: Callable[[Any], Awaitable[T]],
    *,
    notice: bool = False,
    on_interrupt: Callable[[], None] = interrupted_notice,
) -> T:
    """Build services, run ``body(services)`` on an event loop, close them, map errors.

    ``notice``: the command talks to a model, so say which when it is the bundled one.
    Ctrl-C and SIGTERM cancel ``body`` (a streaming reply is then stored as
    interrupted), call ``on_interrupt`` and exit 130 or 143.
    """
    terminated = False

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None

        def terminate() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
        setup_logging(ctx.config().get("general", "log_level"))
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
        on_interrupt()
        sys.exit(EXIT_INTERRUPTED)
    except asyncio.CancelledError:
        if not terminated:
            raise
        on_interrupt()
        sys.exit(EXIT_TERMINATED)
