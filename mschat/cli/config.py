"""``mschat config``: where the config lives and what it says."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mschat.cli.base import Context, MschatGroup
from mschat.cli.output import print_json


@click.group(cls=MschatGroup)
def config() -> None:
    """Show where the config lives and what it says.

    \b
    Examples:
      mschat config path
      mschat config show
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
    from mschat.config import config_path, db_path

    if database:
        click.echo(str(Path(ctx.db) if ctx.db else db_path()))
    else:
        click.echo(str(config_path()))


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def config_show(ctx: Context, as_json: bool) -> None:
    """Print the merged settings (file + environment) with secrets masked."""
    from mschat.config import load_config

    loaded = load_config(db=ctx.db)
    data = {"file": str(loaded.file), "database": str(loaded.db), **loaded.masked()}
    if as_json:
        print_json(data)
        return
    click.echo(f"# file: {data.pop('file')}\n# database: {data.pop('database')}")
    for section, values in data.items():
        if not values:
            continue
        if section == "providers":
            for name, entry in values.items():
                click.echo(f"\n[providers.{name}]")
                for key, value in entry.items():
                    click.echo(f"{key} = {json.dumps(value)}")
            continue
        click.echo(f"\n[{section}]")
        for key, value in values.items():
            if value is None:
                continue
            origin = loaded.origins.get(f"{section}.{key}")
            suffix = (
                f"  # from {origin}" if origin and origin.startswith(("MSCHAT", "DISC")) else ""
            )
            click.echo(f"{key} = {json.dumps(value)}{suffix}")
