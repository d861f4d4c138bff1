"""``mschat users``: list, show and change users."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from mschat.cli.base import TEXT, Context, run_async
from mschat.cli.output import cell, print_json, short_time, table


@click.group()
def users() -> None:
    """List, show and change users (local, Discord and API).

    \b
    Examples:
      mschat users list --kind discord
      mschat users show 3
      mschat users set 3 --status active --temperature 0.5
    """


@users.command("list")
@click.option("--kind", type=click.Choice(["local", "discord", "api"]), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def users_list(ctx: Context, kind: str | None, as_json: bool) -> None:
    """List users, most recently active first.

    \b
    Example:
      mschat users list --kind discord
    """

    async def body(services: Any) -> list[Any]:
        await services.manager.local_user()
        return await services.manager.list_users(kind)

    found = run_async(ctx, body)
    if as_json:
        print_json([asdict(u) for u in found])
        return
    table(
        [
            [
                str(u.id),
                u.kind,
                u.external_id,
                u.name,
                u.status,
                u.model or "(default)",
                str(u.current_session_id or ""),
                short_time(u.updated),
            ]
            for u in found
        ],
        ["ID", "KIND", "EXTERNAL ID", "NAME", "STATUS", "MODEL", "CURRENT", "UPDATED"],
    )


@users.command("show")
@click.argument("user_ref", required=False, type=TEXT)
@click.option(
    "--since", type=TEXT, help="Cost over this period: 7d, 24h, 30m, 2w or a date (default: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def users_show(ctx: Context, user_ref: str | None, since: str | None, as_json: bool) -> None:
    """Show a user's settings, sessions and what their answers cost (default: you).

    \b
    Examples:
      mschat users show
      mschat users show 3 --since 7d
    """
    from mschat.core.costs import parse_since

    async def body(services: Any) -> tuple[Any, list[Any], Any, list[str]]:
        manager = services.manager
        me = await manager.local_user()
        user = await manager.find_user(user_ref) if user_ref else me
        own = await manager.list_sessions(user, include_public=False, limit=25)
        start = parse_since(since) if since else None
        spent = await manager.spending(me, user_id=user.id, since=start)
        return user, own, spent, await manager.tool_grants(user)

    user, own, spent, grants = run_async(ctx, body)
    if as_json:
        print_json(
            {
                "user": asdict(user),
                "sessions": [asdict(s) for s in own],
                "spending": {**spent.as_json(), "since": since},
                "tool_grants": grants,
            }
        )
        return
    for key, value in asdict(user).items():
        click.echo(f"{key:>18}: {cell(value)}")
    click.echo(
        f"{'sessions':>18}: " + (", ".join(f"{s.id} {cell(s.title)}" for s in own) or "none")
    )
    click.echo(f"{'cost':>18}: {spent.text}" + (f" since {cell(since)}" if since else ""))
    if grants:
        click.echo(f"{'tools granted':>18}: " + ", ".join(cell(g) for g in grants))


@users.command("set")
@click.argument("user_ref", required=False, type=TEXT)
@click.option("--name", type=TEXT, help="Display name.")
@click.option("--status", type=click.Choice(["new", "active", "disabled"]), help="Status.")
@click.option("--system", "system_msg", type=TEXT, help="Default system message ('' clears it).")
@click.option("--max-tokens", type=int, help="Max tokens of a reply.")
@click.option("--temperature", type=float, help="Temperature (0-2).")
@click.option(
    "--model", type=TEXT, help="Default model of new sessions ('' for the global default)."
)
@click.option("--show-public/--no-show-public", default=None, help="List others' public sessions.")
@click.option("--attach/--no-attach", default=None, help="New sessions become current.")
@click.option("--admin/--no-admin", default=None, help="Admin rights (admin only).")
@click.option(
    "--rate-limit", type=int, help="Questions allowed per 6 hours (admin only; 0 blocks)."
)
@click.option("--priority", type=int, help="Queue priority: higher is answered first (admin only).")
@click.option("--ignored/--not-ignored", default=None, help="Ignore the user (admin only).")
@click.option(
    "--allow-tool",
    "allow_tools",
    multiple=True,
    type=TEXT,
    metavar="SERVER/TOOL",
    help="Let a Discord or API user run this MCP tool (SERVER/* for all; admin only).",
)
@click.option(
    "--revoke-tool",
    "revoke_tools",
    multiple=True,
    type=TEXT,
    metavar="SERVER/TOOL",
    help="Take back a tool granted with --allow-tool (admin only).",
)
@click.pass_obj
def users_set(
    ctx: Context,
    user_ref: str | None,
    allow_tools: tuple[str, ...],
    revoke_tools: tuple[str, ...],
    **changes: Any,
) -> None:
    """Change a user's settings (default: you; others need admin).

    \b
    Examples:
      mschat users set --temperature 0.3 --max-tokens 1200
      mschat users set 3 --status active --attach
      mschat users set 5 --allow-tool files/read_file
    """
    values = {k: v for k, v in changes.items() if v is not None}
    if not values and not allow_tools and not revoke_tools:
        raise click.UsageError("nothing to change; see --help for the settings")

    async def body(services: Any) -> tuple[Any, list[str] | None]:
        manager = services.manager
        me = await manager.local_user()
        user = await manager.find_user(user_ref) if user_ref else me
        grants = None
        if allow_tools or revoke_tools:
            grants = await manager.change_tool_grants(
                me, user.id, add=list(allow_tools), remove=list(revoke_tools)
            )
        if values:
            user = await manager.update_user(me, user.id, **values)
        return user, grants

    user, grants = run_async(ctx, body)
    changed = sorted(values) + (["tools"] if grants is not None else [])
    click.echo(f"Updated user {user.id} ({cell(user.label)}): " + ", ".join(changed))
    if grants is not None:
        click.echo("Tools granted: " + (", ".join(cell(g) for g in grants) or "none"))
