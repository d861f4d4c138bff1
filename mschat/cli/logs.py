"""``mschat logs``: the operations logs the database keeps (admin only)."""

from __future__ import annotations

import json
from typing import Any

import click

from mschat.cli.base import TEXT, Context, run_async
from mschat.cli.output import print_json, short_time, table
from mschat.store.contract import KINDED_LOGS

#: the command's names of the logs -> their tables
LOGS = {"interactions": "interactions", "api-calls": "api_calls", "feedback": "feedback"}

#: the columns of each log's table: header -> how a row shows it
COLUMNS: dict[str, dict[str, Any]] = {
    "interactions": {
        "ID": lambda r: r["id"],
        "TIME": lambda r: short_time(r["created"]),
        "USER": lambda r: r["user_name"] or "",
        "SOURCE": lambda r: r["source"],
        "KIND": lambda r: r["kind"],
        "NAME": lambda r: r["name"] or "",
        "STATUS": lambda r: r["status"] or "",
        "ERROR": lambda r: (r["error"] or "")[:80],
        "TEXT": lambda r: (_payload(r).get("excerpt") or "")[:60],
    },
    "api_calls": {
        "ID": lambda r: r["id"],
        "STARTED": lambda r: short_time(r["started"]),
        "USER": lambda r: r["user_name"] or "",
        "MODEL": lambda r: "/".join(p for p in (r["provider"], r["model"]) if p),
        "STATUS": lambda r: r["status"],
        "HTTP": lambda r: r["http_status"] or "",
        "LATENCY": lambda r: "" if r["latency_ms"] is None else f"{r['latency_ms']} ms",
        "TOKENS": lambda r: f"{r['prompt_tokens'] or 0}/{r['completion_tokens'] or 0}",
        "SESSION": lambda r: r["session_id"] or "",
        "ERROR": lambda r: (r["error"] or "")[:80],
    },
    "feedback": {
        "ID": lambda r: r["id"],
        "TIME": lambda r: short_time(r["created"]),
        "USER": lambda r: r["user_name"] or "",
        "KIND": lambda r: r["kind"],
        "ANSWER": lambda r: r["message_id"],
        "TEXT": lambda r: (r["text"] or "")[:100],
    },
}


def _since(text: str) -> str:
    """``--since`` as the stored times' ISO text (the core's periods), or a usage error."""
    from mschat.core.costs import parse_since
    from mschat.core.errors import InvalidInput

    try:
        return parse_since(text)
    except InvalidInput as error:
        raise click.BadParameter(str(error), param_hint="--since") from None


@click.command()
@click.argument("log", type=click.Choice(list(LOGS)))
@click.option("--user", "user_ref", type=TEXT, help="Only this user's rows (id or name).")
@click.option("--since", type=TEXT, help="Only rows from then on: 30m, 2h, 7d, 1w or a date.")
@click.option(
    "--kind",
    type=TEXT,
    help="Only rows of this kind: mention, message, slash_command, component… "
    "(interactions); good, outdated, inaccurate, other (feedback).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most N rows."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (all columns).")
@click.pass_obj
def logs(
    ctx: Context,
    log: str,
    user_ref: str | None,
    since: str | None,
    kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show an operations log, newest first (admin only).

    \b
    interactions  Discord commands, buttons, messages that mention the bot and answered
                  messages, with payload and outcome
    api-calls     provider requests: model, status, latency, tokens
    feedback      votes and texts given on answers

    Interactions and API calls are kept for logs.retention_days.

    \b
    Examples:
      mschat logs interactions --since 2h
      mschat logs interactions --kind mention
      mschat logs api-calls --user alice --limit 20
      mschat logs feedback --json
    """
    table_name = LOGS[log]
    start = _since(since) if since else None
    if kind is not None and table_name not in KINDED_LOGS:
        raise click.BadParameter("only interactions and feedback have kinds", param_hint="--kind")

    async def body(services: Any) -> list[dict[str, Any]]:
        manager = services.manager
        me = await manager.local_user()
        user_id = (await manager.find_user(user_ref)).id if user_ref else None
        return await manager.list_log(
            me, table_name, user_id=user_id, since=start, limit=limit, kind=kind
        )

    rows = run_async(ctx, body)
    if as_json:
        print_json([_json_row(row) for row in rows])
        return
    columns = COLUMNS[table_name]
    table([[str(show(row)) for show in columns.values()] for row in rows], list(columns))


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row for ``--json``: an interaction's payload as the JSON it was stored as."""
    if isinstance(row.get("payload"), str):
        try:
            return {**row, "payload": json.loads(row["payload"])}
        except ValueError:
            return row
    return row


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    """An interaction's payload as a dict (empty when it is none, or not an object)."""
    payload = _json_row(row).get("payload")
    return payload if isinstance(payload, dict) else {}
