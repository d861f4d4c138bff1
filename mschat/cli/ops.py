"""``mschat ops``: pause and resume answering, and the queue's state, for the whole deployment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from mschat.cli.base import Context, run_async
from mschat.cli.output import print_json


@click.group()
def ops() -> None:
    """Pause or resume answering, and see the queue (every instance on the database).

    \b
    Examples:
      mschat ops pause
      mschat ops status
      mschat ops resume
    """


async def _set_paused(services: Any, paused: bool) -> str:
    """Store ``queue.paused`` (an admin's live setting); what new questions get now."""
    from mschat.cli.config import _admin_name

    name = await _admin_name(services)
    if paused:
        services.live.set("queue.paused", True, name)
    else:
        services.live.unset("queue.paused")
    return str(services.live.get("queue.when_paused"))


@ops.command("pause")
@click.pass_obj
def ops_pause(ctx: Context) -> None:
    """Pause answering: running answers finish; new questions are refused, or wait
    with queue.when_paused = hold. Every instance applies it within 1 s.

    \b
    Example:
      mschat ops pause
    """
    mode = run_async(ctx, lambda services: _set_paused(services, True))
    follow = "wait in the queue" if mode == "hold" else 'get a "paused" reply'
    click.echo(f"paused: running answers finish; new questions {follow}")


@ops.command("resume")
@click.pass_obj
def ops_resume(ctx: Context) -> None:
    """Resume answering: waiting questions are answered in their order.

    \b
    Example:
      mschat ops resume
    """
    run_async(ctx, lambda services: _set_paused(services, False))
    click.echo("resumed")


@ops.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def ops_status(ctx: Context, as_json: bool) -> None:
    """Show whether answering is paused, the queue's length, answers running per
    provider and the oldest wait.

    \b
    Examples:
      mschat ops status
      mschat ops status --json | jq .waiting
    """
    import asyncio

    from mschat.core.answer.turns import stamp

    async def body(services: Any) -> dict[str, Any]:
        status = await asyncio.to_thread(services.store.queue_status, stamp())
        oldest = None
        if status.oldest is not None:
            since = datetime.fromisoformat(status.oldest)
            oldest = round((datetime.now(UTC) - since).total_seconds(), 1)
        return {
            "paused": bool(services.live.get("queue.paused")),
            "when_paused": services.live.get("queue.when_paused"),
            "waiting": status.waiting,
            "running": status.running,
            "oldest_wait_s": oldest,
        }

    result = run_async(ctx, body)
    if as_json:
        print_json(result)
        return
    paused = f"yes (new questions: {result['when_paused']})" if result["paused"] else "no"
    click.echo(f"paused: {paused}")
    click.echo(f"waiting: {result['waiting']}")
    running = ", ".join(f"{name} {count}" for name, count in sorted(result["running"].items()))
    click.echo(f"running: {running or 'none'}")
    wait = result["oldest_wait_s"]
    click.echo(f"oldest wait: {'none' if wait is None else f'{wait:g} s'}")
