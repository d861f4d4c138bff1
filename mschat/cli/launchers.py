"""The long-running front ends: the terminal UI, the HTTP API, the Discord bot.

Each refuses a database at an older schema (one line naming ``mschat db
upgrade``) unless given ``--upgrade``: an upgrade is a step an operator takes,
not a side effect of restarting one of several instances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mschat.cli.base import Context, fail, setup_logging
from mschat.store.schema import OutdatedSchema

if TYPE_CHECKING:
    from mschat.core.services import Services


def open_services(ctx: Context, command: str, *, upgrade: bool, server: bool = False) -> Services:
    """A long-running front end's services; an outdated schema is refused unless ``upgrade``."""
    try:
        return ctx.services(server=server, notice=True, upgrade=upgrade)
    except OutdatedSchema as exc:
        raise OutdatedSchema(exc.url, exc.pending, command=f"mschat {command}") from None


upgrade_option = click.option(
    "--upgrade",
    is_flag=True,
    help="Upgrade an outdated database schema first (else refused: see `mschat db upgrade`).",
)


@click.command()
@click.option("--user", "user_ref", help="Open in another user's view (admin).")
@click.option(
    "--admin", "admin_screen", is_flag=True, help="Open on the Admin screen (admins only)."
)
@upgrade_option
@click.pass_obj
def tui(ctx: Context, user_ref: str | None, admin_screen: bool, upgrade: bool) -> None:
    """Open the terminal UI (the default command).

    \b
    Examples:
      mschat
      mschat tui --user 3
      mschat tui --admin
      mschat tui --upgrade
    """
    try:
        from mschat.tui.app import run as run_tui  # type: ignore[import-not-found]
    except ImportError as exc:
        fail(f"the terminal UI is not available: {exc}")
    services = open_services(ctx, "tui", upgrade=upgrade)
    run_tui(services, user_ref=user_ref, admin=admin_screen)


@click.command("serve-api")
@click.option("--host", help="Address to bind (default 127.0.0.1; others need api.token).")
@click.option("--port", type=int, help="Port (default 5000).")
@upgrade_option
@click.pass_obj
def serve_api(ctx: Context, host: str | None, port: int | None, upgrade: bool) -> None:
    """Serve the HTTP API: /chat, /chat-stream, sessions REST and OpenAI-compatible /v1.

    \b
    Examples:
      mschat serve-api
      MSCHAT_API_TOKEN=secret mschat serve-api --host 0.0.0.0 --port 8080
    """
    from mschat.api.server import run as run_api  # type: ignore[import-not-found]

    services = open_services(ctx, "serve-api", upgrade=upgrade, server=True)
    services.live.on_change(lambda live: setup_logging(live.get("general.log_level")))
    run_api(services, host=host, port=port)


@click.command("serve-discord")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level (default: discord.log_level).",
)
@click.option(
    "--no-gateway",
    is_flag=True,
    help="Serve only the HTTP interactions endpoint (discord.interactions_listen): "
    "slash commands and buttons, no plain messages.",
)
@upgrade_option
@click.pass_obj
def serve_discord(ctx: Context, log_level: str | None, no_gateway: bool, upgrade: bool) -> None:
    """Run the Discord bot (token from discord.token or MSCHAT_DISCORD_TOKEN).

    \b
    Examples:
      MSCHAT_DISCORD_TOKEN=... mschat serve-discord --log-level info
      MSCHAT_DISCORD_INTERACTIONS_LISTEN=127.0.0.1:5001 mschat serve-discord --no-gateway
    """
    from mschat.discord.bot import run as run_bot  # type: ignore[import-not-found]

    services = open_services(ctx, "serve-discord", upgrade=upgrade, server=True)
    run_bot(services, log_level=log_level, gateway=not no_gateway)


@click.command("serve-admin")
@click.option("--host", help="Address to bind (default 127.0.0.1; others need admin.token).")
@click.option("--port", type=int, help="Port (default 5003; 0 picks a free one).")
@upgrade_option
@click.pass_obj
def serve_admin(ctx: Context, host: str | None, port: int | None, upgrade: bool) -> None:
    """Serve the terminal UI, as the local admin, in a browser (textual-serve).

    \b
    Examples:
      mschat serve-admin
      MSCHAT_ADMIN_TOKEN=secret mschat serve-admin --host 0.0.0.0 --port 8443
    """
    import asyncio

    from mschat.admin_web.server import check_bind
    from mschat.admin_web.server import run as run_admin

    config = ctx.config()
    host = host if host is not None else str(config.get("admin", "host"))
    port = port if port is not None else int(config.get("admin", "port"))
    token = config.get("admin", "token") or None
    check_bind(host, token)
    # the database must be at the current schema before a TUI opens it for a browser
    asyncio.run(open_services(ctx, "serve-admin", upgrade=upgrade).aclose())
    level = str(config.get("general", "log_level"))
    setup_logging("debug" if level == "debug" else "info")  # the start line and logins
    run_admin(
        host=host,
        port=port,
        token=token,
        allowed_hosts=list(config.get("admin", "allowed_hosts")),
        db=config.db,
        config_file=config.file,
    )
