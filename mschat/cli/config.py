"""``mschat config``: where the config lives and what it says."""

from __future__ import annotations

import json
from typing import Any

import click

from mschat.cli.base import TEXT, Context, fail, run_async
from mschat.cli.output import print_json, table


@click.group()
def config() -> None:
    """Show where the config lives and what it says.

    \b
    Examples:
      mschat config path
      mschat config show > config.toml
      mschat config set defaults.rate_limit 20
      mschat config show --live
    """


@config.command("path")
@click.option("--database", is_flag=True, help="Print the database's path instead.")
@click.pass_obj
def config_path_cmd(ctx: Context, database: bool) -> None:
    """Print the config file's path (or, with --database, the database's).

    \b
    Examples:
      mschat config path
      sqlite-utils tables "$(mschat config path --database)" --counts
    """
    from mschat.config import config_path

    if database:
        click.echo(ctx.config().db_shown)
    else:
        click.echo(str(config_path()))


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--live", is_flag=True, help="Show the live settings and where their values come from."
)
@click.pass_obj
def config_show(ctx: Context, as_json: bool, live: bool) -> None:
    """Print the settings in effect (file + environment) as a config file, secrets masked.

    The output is valid TOML: it can be saved as a config.toml (the masked
    secrets then need their real values). With --live: the live settings, their
    values in effect and whether the database or the config sets them.

    \b
    Examples:
      mschat config show
      mschat config show --json | jq .providers
      mschat config show --live
    """
    if live:
        _show_live(ctx, as_json)
        return
    loaded = ctx.config()
    if as_json:
        print_json({"file": str(loaded.file), **loaded.masked()})
        return
    click.echo(loaded.masked_toml(), nl=False)


def _checked(check: Any, *args: Any) -> None:
    """Run a check of the arguments; its ConfigError becomes the one-line error."""
    from mschat.core.errors import ConfigError

    try:
        check(*args)
    except ConfigError as exc:
        fail(str(exc))


async def _admin_name(services: Any) -> str:
    """The terminal user's name, once checked to be an admin (live settings are theirs)."""
    from mschat.core.errors import PermissionDenied

    user = await services.manager.local_user()
    if not user.admin:
        raise PermissionDenied(f"only an admin may change live settings ({user.name} is not one)")
    return str(user.name)


@config.command("set")
@click.argument("key", type=TEXT)
@click.argument("value", type=TEXT)
@click.pass_obj
def config_set(ctx: Context, key: str, value: str) -> None:
    """Set a live setting in the database: every running instance applies it within 1 s.

    The value is checked as in config.toml and wins over config.toml while set.

    \b
    Examples:
      mschat config set defaults.rate_limit 20
      mschat config set general.log_level debug
    """
    from mschat.core.live import parse_value

    _checked(parse_value, key, value)  # a bad key or value: one line, before the database

    async def body(services: Any) -> Any:
        return services.live.set(key, value, await _admin_name(services))

    parsed = run_async(ctx, body)
    click.echo(f"{key} = {json.dumps(parsed)} (live)")


@config.command("unset")
@click.argument("key", type=TEXT)
@click.pass_obj
def config_unset(ctx: Context, key: str) -> None:
    """Remove a live setting from the database: config.toml's value applies again.

    \b
    Example:
      mschat config unset defaults.rate_limit
    """
    from mschat.core.live import live_key

    _checked(live_key, key)

    async def body(services: Any) -> tuple[bool, Any]:
        await _admin_name(services)
        return services.live.unset(key), services.live.get(key)

    removed, value = run_async(ctx, body)
    state = "unset" if removed else "was not set"
    click.echo(f"{key} {state}; in effect: {json.dumps(value)} (config)")


def _show_live(ctx: Context, as_json: bool) -> None:
    """The live settings: value in effect, config.toml's value, who set the database's."""
    from mschat.core.live import LIVE_KEYS

    async def body(services: Any) -> list[dict[str, Any]]:
        live, stored = services.live, services.live.stored()
        return [
            {
                "key": name,
                "value": live.get(name),
                "config": live.base(name),
                "source": "database" if name in stored else "config",
                "updated": stored[name].updated if name in stored else None,
                "updated_by": stored[name].updated_by if name in stored else None,
            }
            for name in LIVE_KEYS
        ]

    rows = run_async(ctx, body)
    if as_json:
        print_json(rows)
        return
    table(
        [
            [
                r["key"],
                json.dumps(r["value"]),
                r["source"],
                json.dumps(r["config"]),
                f"{r['updated_by'] or '?'} at {r['updated']}" if r["updated"] else "",
            ]
            for r in rows
        ],
        ["KEY", "VALUE", "FROM", "CONFIG", "SET BY"],
    )
