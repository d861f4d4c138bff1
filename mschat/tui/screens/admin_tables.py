"""The admin screen's tables as plain data: columns, cells and filters (no Textual here).

Every cell is a rich ``Text`` of visible characters: a DataTable would parse a
``str`` cell as markup, and outside text (names, models, errors) is never markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text

from mschat.core.costs import Cost
from mschat.core.models import User
from mschat.tui.format import one_line, short_time

#: the periods of the costs and logs: (label, ``parse_since`` text; "all" for no start)
PERIODS: tuple[tuple[str, str], ...] = (
    ("last hour", "1h"),
    ("last 24 hours", "24h"),
    ("last 7 days", "7d"),
    ("last 30 days", "30d"),
    ("all time", "all"),
)

USER_COLUMNS = (
    "ID",
    "KIND",
    "NAME",
    "STATUS",
    "ADMIN",
    "IGNORED",
    "PRIORITY",
    "RATE LIMIT",
    "COST",
    "MODEL",
)

Cell = Callable[[dict[str, Any]], object]


def _user_name(row: dict[str, Any]) -> object:
    return row.get("user_name") or ""


def _error(row: dict[str, Any]) -> object:
    return row.get("error") or ""


#: the columns of the logs' tables (``manager.list_log`` rows): header -> cell
LOG_COLUMNS: dict[str, tuple[tuple[str, Cell], ...]] = {
    "interactions": (
        ("ID", lambda r: r["id"]),
        ("TIME", lambda r: short_time(r["created"])),
        ("USER", _user_name),
        ("SOURCE", lambda r: r["source"]),
        ("KIND", lambda r: r["kind"]),
        ("NAME", lambda r: r["name"] or ""),
        ("STATUS", lambda r: r["status"] or ""),
        ("ERROR", _error),
    ),
    "api_calls": (
        ("ID", lambda r: r["id"]),
        ("STARTED", lambda r: short_time(r["started"])),
        ("USER", _user_name),
        ("MODEL", lambda r: "/".join(p for p in (r["provider"], r["model"]) if p)),
        ("STATUS", lambda r: r["status"]),
        ("HTTP", lambda r: r["http_status"] or ""),
        ("LATENCY", lambda r: "" if r["latency_ms"] is None else f"{r['latency_ms']} ms"),
        ("TOKENS", lambda r: f"{r['prompt_tokens'] or 0}/{r['completion_tokens'] or 0}"),
        ("SESSION", lambda r: r["session_id"] or ""),
        ("ERROR", _error),
    ),
}


def cell(value: object) -> Text:
    """A value as one line of visible text, never markup."""
    return Text(one_line(str(value)), no_wrap=True, overflow="ellipsis")


def rate_limit_text(limit: int | None, default: int | None) -> str:
    """A user's rate limit: questions per 6 hours, the default, or blocked."""
    if limit is None:
        return f"default ({default})" if default is not None else "default (none)"
    return "0 (blocked)" if limit == 0 else str(limit)


def user_row(user: User, cost: Cost | None, currency: str, default_limit: int | None) -> list[Text]:
    """The cells of a user in the Users table."""
    return [
        cell(user.id),
        cell(user.kind),
        cell(user.name),
        cell(user.status),
        cell("yes" if user.admin else ""),
        cell("ignored" if user.ignored else ""),
        cell(user.priority),
        cell(rate_limit_text(user.rate_limit, default_limit)),
        cell(cost.text(currency) if cost is not None else ""),
        cell(user.model or "(default)"),
    ]


def log_row(table: str, row: dict[str, Any]) -> list[Text]:
    """The cells of a log row in its table."""
    return [cell(show(row)) for _, show in LOG_COLUMNS[table]]


def matches(cells: Sequence[Text], needle: str, *extra: str | None) -> bool:
    """Whether the case-folded ``needle`` is in a shown cell or in one of ``extra``."""
    if not needle:
        return True
    texts = [c.plain for c in cells] + [one_line(e) for e in extra if e]
    return any(needle in text.casefold() for text in texts)
