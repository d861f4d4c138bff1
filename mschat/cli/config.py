"""``mschat config``: where the config lives and what it says."""

from __future__ import annotations

import click

from mschat.cli.base import Context
from mschat.cli.output import print_json


@click.group()
def config() -> None:
    """Show where the config lives and what it says.

    \b
    Examples:
      mschat config path
      mschat config show > config.toml
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
@click.pass_obj
def config_show(ctx: Context, as_json: bool) -> None:
    """Print the settings in effect (file + environment) as a config file, secrets masked.

    The output is valid TOML: it can be saved as a config.toml (the masked
    secrets then need their real values).

    \b
    Examples:
      mschat config show
      mschat config show --json | jq .providers
    """
    loaded = ctx.config()
    if as_json:
        print_json({"file": str(loaded.file), **loaded.masked()})
        return
    click.echo(loaded.masked_toml(), nl=False)
