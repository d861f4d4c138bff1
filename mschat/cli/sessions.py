"""``mschat sessions``: list, show, rename, remove, search, export and import."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mschat.cli.base import TEXT, Context, run_async
from mschat.cli.output import cell, print_document, print_json, short_time, table
from mschat.core.costs import Prices
from mschat.core.errors import MschatError


@click.group()
def sessions() -> None:
    """List, show, rename, remove, search, export and import sessions.

    \b
    Examples:
      mschat sessions list --public
      mschat sessions show 12
      mschat sessions rename 12 "SQLite notes"
      mschat sessions search "write-ahead log"
      mschat sessions export 12 --format json -o notes.json
      mschat sessions import conversations.json
    """


@sessions.command("list")
@click.option("--public", "include_public", is_flag=True, help="Include others' public sessions.")
@click.option("--all", "everyone", is_flag=True, help="Every user's sessions (admin).")
@click.option("-n", "--limit", default=50, show_default=True, help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def sessions_list(
    ctx: Context, include_public: bool, everyone: bool, limit: int, as_json: bool
) -> None:
    """List your sessions, most recent first.

    \b
    Examples:
      mschat sessions list
      mschat sessions list --all -n 100
    """

    async def body(services: Any) -> list[Any]:
        manager = services.manager
        user = await manager.local_user()
        return await manager.list_sessions(
            user, include_public=include_public or None, everyone=everyone, limit=limit
        )

    found = run_async(ctx, body)
    if as_json:
        print_json([asdict(s) for s in found])
        return
    if not found:
        click.echo('No sessions yet. Start one with: mschat ask "..."')
        return
    table(
        [
            [
                str(s.id),
                s.title[:40],
                s.creator_name or "",
                s.model or "",
                str(s.message_count),
                "public" if s.public else "private",
                short_time(s.updated),
            ]
            for s in found
        ],
        ["ID", "TITLE", "CREATOR", "MODEL", "MSGS", "VISIBILITY", "UPDATED"],
    )


@sessions.command("show")
@click.argument("session_ref", type=TEXT)
@click.option("-n", "--last", type=int, help="Only the last N messages.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def sessions_show(ctx: Context, session_ref: str, last: int | None, as_json: bool) -> None:
    """Show a session's settings and messages (by id or title).

    \b
    Examples:
      mschat sessions show 12
      mschat sessions show "SQLite notes" -n 4
    """

    async def body(services: Any) -> tuple[Any, list[Any], Any, Any]:
        manager = services.manager
        user = await manager.local_user()
        session = await manager.find_session(user, session_ref)
        messages = await manager.messages(user, session.id, limit=last)
        spent = await manager.spending(user, session_id=session.id)
        return session, messages, spent, manager.prices

    session, messages, spent, prices = run_async(ctx, body)
    if as_json:
        print_json(
            {
                "session": asdict(session),
                "messages": [_with_cost(asdict(m), prices) for m in messages],
                "spending": spent.as_json(),
            }
        )
        return
    from mschat.core.export import render_markdown

    print_document(render_markdown(session, messages))
    click.echo(f"Cost: {spent.text}")


def _with_cost(message: dict[str, Any], prices: Prices) -> dict[str, Any]:
    """A message as JSON, an answer with what it cost (null when unknown)."""
    if message["role"] == "assistant":
        cost = prices.of_reply(message["model"], message["tokens_in"], message["tokens_out"])
        message["cost"] = cost.as_json()
    return message


@sessions.command("rename")
@click.argument("session_ref", type=TEXT)
@click.argument("title", type=TEXT)
@click.pass_obj
def sessions_rename(ctx: Context, session_ref: str, title: str) -> None:
    """Rename a session you created.

    \b
    Example:
      mschat sessions rename 12 "SQLite notes"
    """

    async def body(services: Any) -> Any:
        manager = services.manager
        user = await manager.local_user()
        session = await manager.find_session(user, session_ref)
        return await manager.rename_session(user, session.id, title)

    session = run_async(ctx, body)
    click.echo(f"Session {session.id} renamed to {cell(repr(session.title))}")


@sessions.command("set")
@click.argument("session_ref", type=TEXT)
@click.option("--title", type=TEXT, help="New title.")
@click.option("-m", "--model", type=TEXT, help="Model for the next turns.")
@click.option("--system", type=TEXT, help="System message ('' clears it).")
@click.option("--public/--private", default=None, help="Visibility.")
@click.pass_obj
def sessions_set(
    ctx: Context,
    session_ref: str,
    title: str | None,
    model: str | None,
    system: str | None,
    public: bool | None,
) -> None:
    """Change a session's title, model, system message or visibility.

    \b
    Examples:
      mschat sessions set 12 --public
      mschat sessions set 12 -m openai/gpt-4o --system "Answer in French"
    """

    async def body(services: Any) -> Any:
        manager = services.manager
        user = await manager.local_user()
        session = await manager.find_session(user, session_ref)
        if title is not None:
            session = await manager.rename_session(user, session.id, title)
        if model is not None:
            session = await manager.set_session_model(user, session.id, model)
        if system is not None:
            session = await manager.set_session_system(user, session.id, system)
        if public is not None:
            session = await manager.set_session_public(user, session.id, public)
        return session

    session = run_async(ctx, body)
    visibility = "public" if session.public else "private"
    click.echo(
        f"Session {session.id}: {cell(repr(session.title))}, {cell(session.model)}, {visibility}"
    )


def _described(session: Any) -> str:
    return f"{session.id} ({cell(session.title)}, {session.message_count} messages)"


@sessions.command("rm")
@click.argument("session_refs", nargs=-1, required=True, type=TEXT)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def sessions_rm(ctx: Context, session_refs: tuple[str, ...], yes: bool) -> None:
    """Remove sessions you created, with their messages.

    On a terminal it first names the sessions and asks; -y does not ask.

    \b
    Example:
      mschat sessions rm 12 13 -y
    """
    ask_first = not yes and sys.stdin.isatty()

    async def body(services: Any) -> list[Any]:
        manager = services.manager
        user = await manager.local_user()
        found: dict[int, Any] = {}
        for ref in session_refs:
            session = await manager.find_session(user, ref)
            found[session.id] = session
        if ask_first:
            # before anything is removed: every reference resolved, the user said yes
            named = "; ".join(_described(s) for s in found.values())
            click.confirm(f"Remove session(s) {named}?", abort=True, err=True)
        for session in found.values():
            await manager.remove_session(user, session.id)
        return list(found.values())

    for session in run_async(ctx, body):
        click.echo(f"Removed session {_described(session)}")


@sessions.command("search")
@click.argument("text", type=TEXT)
@click.option("-n", "--limit", default=20, show_default=True, help="How many hits.")
@click.option("--all", "everyone", is_flag=True, help="Search every user's sessions (admin).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def sessions_search(ctx: Context, text: str, limit: int, everyone: bool, as_json: bool) -> None:
    """Full-text search of messages; prints session, date and snippet.

    \b
    Examples:
      mschat sessions search "write-ahead"
      mschat sessions search sqlite --json
    """

    async def body(services: Any) -> list[Any]:
        manager = services.manager
        user = await manager.local_user()
        return await manager.search(user, text, limit=limit, everyone=everyone)

    hits = run_async(ctx, body)
    if as_json:
        print_json([asdict(h) for h in hits])
        return
    if not hits:
        click.echo("No matches.")
        return
    for hit in hits:
        # matched terms in bold on a terminal (click drops the style on a pipe)
        snippet = "".join(click.style(cell(p), bold=True) if m else cell(p) for p, m in hit.parts())
        click.echo(
            f"{hit.session_id:>6}  {short_time(hit.created)}  {cell(hit.session_title[:30]):<30}  "
            f"{hit.role:<9}  {snippet}"
        )


@sessions.command("export")
@click.argument("session_ref", type=TEXT)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to this file (mode 0600)."
)
@click.pass_obj
def sessions_export(ctx: Context, session_ref: str, fmt: str, output: str | None) -> None:
    """Export a session as Markdown or JSON.

    Written to a file or a pipe, the export is exact; on a terminal, control
    characters are shown instead of obeyed.

    \b
    Examples:
      mschat sessions export 12 > notes.md
      mschat sessions export 12 -f json -o notes.json
    """

    async def body(services: Any) -> str:
        manager = services.manager
        user = await manager.local_user()
        session = await manager.find_session(user, session_ref)
        return await manager.export_session(user, session.id, fmt)

    text = run_async(ctx, body)
    if output:
        from mschat.files import write_private

        try:
            write_private(output, text)
        except OSError as error:
            raise MschatError(f"cannot write {output}: {error.strerror or error}") from None
        click.echo(f"Wrote {cell(output)}", err=True)
    else:
        print_document(text, json=fmt == "json")


@sessions.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def sessions_import(ctx: Context, files: tuple[str, ...]) -> None:
    """Import sessions as new private sessions of yours.

    Reads mschat JSON exports (`sessions export -f json`), a ChatGPT data
    export's conversations.json and a simonw/llm logs.db.

    \b
    Examples:
      mschat sessions export 12 -f json -o notes.json
      mschat --db other.db sessions import notes.json
      mschat sessions import ~/chatgpt-export/conversations.json
      mschat sessions import "$(llm logs path)"
    """

    async def body(services: Any) -> list[tuple[str, list[Any]]]:
        manager = services.manager
        user = await manager.local_user()
        imported = []
        for name in files:
            try:
                imported.append((name, list(await manager.import_file(user, Path(name)))))
            except MschatError as error:
                raise MschatError(f"{name}: {error}") from error
        return imported

    for name, found in run_async(ctx, body):
        if not found:
            click.echo(f"Nothing new in {cell(name)}: its conversations were imported before")
        for session in found:
            click.echo(
                f"Imported {cell(name)}: session {session.id} ({cell(session.title)}, "
                f"{session.message_count} messages)"
            )
