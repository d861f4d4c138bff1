"""The long-running front ends: the terminal UI, the HTTP API, the Discord bot."""

from __future__ import annotations

import click

from mschat.cli.base import Context, fail


@click.command()
@click.option("--user", "user_ref", help="Open in another user's view (admin).")
@click.pass_obj
def tui(ctx: Context, user_ref: str | None) -> None:
    """Open the terminal UI (the default command).

    \b
    Examples:
      mschat
      mschat tui --user 3
    """
    try:
        from mschat.tui.app import run as run_tui  # type: ignore[import-not-found]
    except ImportError as exc:
        fail(f"the terminal UI is not available: {exc}")
    services = ctx.services(notice=True)
    run_tui(services, user_ref=user_ref)


@click.command("serve-api")
@click.option("--host", help="Address to bind (default 127.0.0.1; others need api.token).")
@click.option("--port", type=int, help="Port (default 5000).")
@click.pass_obj
def serve_api(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the HTTP API: /chat, /chat-stream, sessions REST and OpenAI-compatible /v1.

    \b
    Examples:
      mschat serve-api
      MSCHAT_API_TOKEN=secret mschat serve-api --host 0.0.0.0 --port 8080
    """
    from mschat.api.server import run as run_api  # type: ignore[import-not-found]

    services = ctx.services(server=True, notice=True)
    run_api(services, host=host, port=port)


@click.command("serve-discord")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level (default: discord.log_level).",
)
@click.pass_obj
def serve_discord(ctx: Context, log_level: str | None) -> None:
    """Run the Discord bot (token from discord.token or MSCHAT_DISCORD_TOKEN).

    \b
    Example:
      MSCHAT_DISCORD_TOKEN=... mschat serve-discord --log-level info
    """
    from mschat.discord.bot import run as run_bot  # type: ignore[import-not-found]

    services = ctx.services(server=True, notice=True)
    run_bot(services, log_level=log_level)
