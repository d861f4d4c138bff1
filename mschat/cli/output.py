"""Output of the listing commands: tables, JSON, and outside text meant for a terminal.

Titles, names, messages and errors come from outside (other users, models,
imported files). In tables they are always shown with :func:`visible`; whole
documents (``sessions show``, ``sessions export``, replies) are shown that way
on a terminal and written byte for byte to a file or a pipe.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

import click

from mschat.visible import visible

#: what JSON may carry raw but a terminal obeys or an encoder refuses (C0 is escaped
#: by json.dumps already); inside JSON strings \\uXXXX means the same character
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON whose every control character is escaped (the same JSON value)."""
    text = json.dumps(data, ensure_ascii=False, indent=indent, default=str)
    return escape_json(text)


def escape_json(text: str) -> str:
    """JSON text with DEL, C1 controls, line separators and lone surrogates escaped."""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json_text(data))


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stdout) is a terminal."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def print_document(text: str, *, json: bool = False) -> None:
    """Print a whole document: made visible on a terminal, else byte for byte.

    JSON stays valid on a terminal: the characters JSON leaves raw are escaped.
    """
    if is_terminal():
        text = escape_json(text) if json else visible(text)
    # color=True: click would otherwise strip escape sequences from piped output
    click.echo(text, nl=False, color=True)


def cell(value: object) -> str:
    """One table cell: a single line, control characters visible."""
    return visible("" if value is None else str(value), newlines=False)


def short_time(value: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM``."""
    return (value or "")[:16].replace("T", " ")


def table(rows: list[list[str]], headers: list[str]) -> None:
    """Print rows as left-aligned columns under their headers (cells made visible)."""
    rows = [[cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(value)) for w, value in zip(widths, row, strict=True)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
