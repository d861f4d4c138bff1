"""The ``mschat`` group: global options, and each command imported only when it runs."""

from __future__ import annotations

import importlib

import click

from mschat import __version__
from mschat.cli.base import Context, MschatGroup, fail
from mschat.core.errors import MschatError

#: command name -> "module:attribute"; ``mschat ask`` imports only its own module
COMMANDS = {
    "ask": "mschat.cli.ask:ask",
    "sessions": "mschat.cli.sessions:sessions",
    "users": "mschat.cli.users:users",
    "models": "mschat.cli.models:models",
    "config": "mschat.cli.config:config",
    "tui": "mschat.cli.launchers:tui",
    "serve-api": "mschat.cli.launchers:serve_api",
    "serve-discord": "mschat.cli.launchers:serve_discord",
}


class LazyGroup(MschatGroup):
    """A group whose commands live in their own modules, imported on first use."""

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


@click.group(cls=LazyGroup, invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="mschat")
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    envvar="MSCHAT_DB",
    help="Database file (default: $MSCHAT_HOME/mschat.db or the user data dir).",
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
    try:
        cli(standalone_mode=True)
    except MschatError as error:  # errors raised while building the group's context
        fail(str(error))
