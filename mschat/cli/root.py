"""The ``mschat`` group: global options, one-line errors, commands imported when they run."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from typing import IO, Any

import click

from mschat import __version__
from mschat.cli.base import EXIT_USER_ERROR, Context
from mschat.core.errors import MschatError
from mschat.visible import visible

#: command name -> "module:attribute"; ``mschat ask`` imports only its own module
COMMANDS = {
    "ask": "mschat.cli.ask:ask",
    "sessions": "mschat.cli.sessions:sessions",
    "users": "mschat.cli.users:users",
    "models": "mschat.cli.models:models",
    "config": "mschat.cli.config:config",
    "db": "mschat.cli.db:db",
    "logs": "mschat.cli.logs:logs",
    "ops": "mschat.cli.ops:ops",
    "tui": "mschat.cli.launchers:tui",
    "serve-api": "mschat.cli.launchers:serve_api",
    "serve-discord": "mschat.cli.launchers:serve_discord",
    "serve-admin": "mschat.cli.launchers:serve_admin",
}
EXIT_USAGE = 2

log = logging.getLogger(__name__)


class OneLineError(click.ClickException):
    """Any error of a command, shown as one line on stderr (never a traceback)."""

    exit_code = EXIT_USER_ERROR

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``Error: …`` on one line, control characters made visible."""
        click.echo(f"Error: {visible(self.message, newlines=False)}", err=file is None, file=file)


class OneLineUsageError(OneLineError):
    """A command line click could not parse: one line, exit code 2."""

    exit_code = EXIT_USAGE


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn usage errors, mschat errors and unexpected exceptions into a OneLineError."""
    try:
        yield
    except OneLineError:
        raise
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx else "mschat"
        raise OneLineUsageError(f"{error.format_message()} (see '{where} -h')") from None
    except click.ClickException as error:
        raise OneLineError(error.format_message()) from None
    except MschatError as error:
        raise OneLineError(str(error)) from None
    except (click.exceptions.Exit, click.Abort):
        raise
    except BrokenPipeError:  # the reader went away (`| head`): click exits quietly
        raise
    except Exception as error:  # a bug: still one line, the traceback only in the debug log
        log.debug("unexpected error", exc_info=True)
        raise OneLineError(f"unexpected {type(error).__name__}: {error}") from None


class RootGroup(click.Group):
    """The ``mschat`` group: each command's module is imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted (as click lists them in --help)."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named ``cmd_name``, importing its module now."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse the global options (a bad one is a one-line error)."""
        with one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; every error it raises becomes one line."""
        with one_line_errors():
            return super().invoke(ctx)


@click.group(
    cls=RootGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="mschat")
@click.option(
    "--db",
    envvar="MSCHAT_DB",
    help="Database file or URL: a path, sqlite:///PATH or postgresql://USER@HOST/DB "
    "(default: database.url, else $MSCHAT_HOME/mschat.db or the user data dir).",
)
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """mschat: multi-user, multi-session LLM chat.

    Run with no command to open the terminal UI.

    \b
    Examples:
      mschat                         open the TUI
      mschat ask "What is SQLite?"   one question, streamed
      mschat ask -c "And WAL?"       continue the last session
      mschat sessions list           your sessions
      mschat serve-api               the HTTP API on 127.0.0.1:5000
    """
    ctx.obj = Context(db)
    if ctx.invoked_subcommand is None:
        tui = cli.get_command(ctx, "tui")
        assert tui is not None
        ctx.invoke(tui)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mschat")
