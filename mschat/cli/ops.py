"""``mschat ops``: pause and resume answering, and the queue's state, for the whole deployment."""

from __future__ import annotations

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
    """Pause or resume as the terminal's user; what new questions get while paused."""
    me = await services.manager.local_user()
    return str(await services.set_paused(me, paused))


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

    async def body(services: Any) -> dict[str, Any]:
        me = await services.manager.local_user()
        state = await services.manager.queue_status(me)
        return dict(state.as_json())

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
