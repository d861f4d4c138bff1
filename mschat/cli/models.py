"""``mschat models``: the models you can use."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click

from mschat.cli.base import EXIT_USER_ERROR, Context, run_async
from mschat.cli.output import print_json, table
from mschat.core.errors import MschatError


@click.command()
@click.option("--remote", is_flag=True, help="Also ask each server for its models.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def models(ctx: Context, remote: bool, as_json: bool) -> None:
    """List the models you can use: configured, aliases and (with --remote) served.

    \b
    Examples:
      mschat models
      mschat models --remote
    """

    async def body(services: Any) -> dict[str, Any]:
        registry = services.registry
        rows = [asdict(info) for info in registry.configured_models()]
        rows += [asdict(info) for info in registry.extra_models()]
        errors = {}
        if remote:
            for name, config in registry.provider_configs.items():
                provider = registry.provider(name)
                lister = getattr(provider, "list_models", None)
                if config.type != "openai" or lister is None:
                    continue
                try:
                    for model in await lister():
                        rows.append(
                            {
                                "name": f"{name}/{model}",
                                "provider": name,
                                "model": model,
                                "context_window": registry.context_window(name, model),
                                "source": "server",
                            }
                        )
                except MschatError as error:
                    errors[name] = str(error)
        try:
            default = registry.resolve(None).full_name
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
    if data["models"]:
        table(
            [
                [
                    m["name"] + (" *" if m["name"] == data["default"] else ""),
                    str(m.get("context_window") or ""),
                    m.get("source", ""),
                ]
                for m in data["models"]
            ],
            ["MODEL", "CONTEXT", "SOURCE"],
        )
    elif data["default"]:
        click.echo(f"default model: {data['default']} (list served models with --remote)")
    for alias, target in data["aliases"].items():
        click.echo(f"alias {alias} -> {target}")
    for name, error in data["errors"].items():
        click.echo(f"{name}: {error}", err=True)
    if not data["models"] and not data["default"]:
        sys.exit(EXIT_USER_ERROR)
