"""``mschat models``: the models you can use."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click

from mschat.cli.base import EXIT_USER_ERROR, Context, note, run_async
from mschat.cli.output import cell, print_json, table
from mschat.core.errors import MschatError


@click.command()
@click.option("--remote", is_flag=True, help="Ask the servers again for the models they serve.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def models(ctx: Context, remote: bool, as_json: bool) -> None:
    """List the models you can use: configured, served, local and aliases.

    The default model is marked with *.

    \b
    Examples:
      mschat models
      mschat models --remote
    """

    async def body(services: Any) -> dict[str, Any]:
        manager = services.manager
        rows = [asdict(info) for info in await manager.list_models(refresh=remote)]
        # servers that could not be asked for their models, and why
        errors = dict(services.registry.unlisted)
        try:
            default = (await manager.resolve_model(None)).full_name
        except MschatError as error:
            default = None
            errors["default"] = str(error)
        return {
            "models": rows,
            "aliases": services.config.aliases,
            "default": default,
            "errors": errors,
        }

    data = run_async(ctx, body)
    if as_json:
        print_json(data)
        return
    listed = {m["name"] for m in data["models"]}
    if data["models"]:
        table([_row(m, data["default"]) for m in data["models"]], ["MODEL", "CONTEXT", "SOURCE"])
    elif data["default"]:
        click.echo(f"default model: {cell(data['default'])}")
    for alias, target in data["aliases"].items():
        if alias not in listed:
            click.echo(f"alias {cell(alias)} -> {cell(target)}")
    for name, error in data["errors"].items():
        note(f"{name}: {error}")
    if not data["models"] and not data["default"]:
        sys.exit(EXIT_USER_ERROR)


def _row(model: dict[str, Any], default: str | None) -> list[str]:
    """One model's table row: an alias shows its target, the default a star."""
    name = model["name"]
    if model.get("target"):
        name = f"{name} -> {model['target']}"
    if model.get("default") or model["name"] == default:
        name += " *"
    return [name, str(model.get("context_window") or ""), model.get("source", "")]
