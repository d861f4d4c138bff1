"""Table and JSON output of the listing commands."""

from __future__ import annotations

import json
from typing import Any

import click


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def short_time(value: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM``."""
    return (value or "")[:16].replace("T", " ")


def table(rows: list[list[str]], headers: list[str]) -> None:
    """Print rows as left-aligned columns under their headers."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
