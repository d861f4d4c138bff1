"""``mschat sessions``: list, show, rename, remove, search, export and import."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mschat.cli.base import Context, MschatGroup, fail, run_async
from mschat.cli.output import print_json, short_time, table
from mschat.core.errors import MschatError


@click.group(cls=MschatGroup)
def sessions() -> None:
    """List, show, rename, remove, search and export sessions.

    \b
    Examples:
      mschat sessions list --public
      mschat sessions show 12
      mschat sessions rename 12 "SQLite notes"
      mschat sessions search "write-ahead log"
      mschat sessions export 12 --format json -o notes.json
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
@click.argument("session_ref")
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

    async def body(services: Any) -> tuple[Any, list[Any]]:
        manager = services.manager
        user = await manager.local_user()
        session = await manager.find_session(user, session_ref)
        return session, await manager.messages(user, session.id, limit=last)

    session, messages = run_async(ctx, body)
    if as_json:
        print_json({"session": asdict(session), "messages": [asdict(m) for m in messages]})
        return
    from mschat.core.export import render_markdown

    click.echo(render_markdown(session, messages), nl=False)


@sessions.command("rename")
@click.argument("session_ref")
@click.argument("title")
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
    click.echo(f"Session {session.id} renamed to {session.title!r}")


@sessions.command("set")
@click.argument("session_ref")
@click.option("--title", help="New title.")
@click.option("-m", "--model", help="Model for the next turns.")
@click.option("--system", help="System message ('' clears it).")
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
    click.echo(f"Session {session.id}: {session.title!r}, {session.model}, {visibility}")


@sessions.command("rm")
@click.argument("session_refs", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def sessions_rm(ctx: Context, session_refs: tuple[str, ...], yes: bool) -> None:
    """Remove sessions you created, with their messages.

    \b
    Example:
      mschat sessions rm 12 13 -y
    """
    if not yes and sys.stdin.isatty():
        click.confirm(f"Remove {len(session_refs)} session(s) and their messages?", abort=True)

    async def body(services: Any) -> list[Any]:
        manager = services.manager
        user = await manager.local_user()
        removed = []
        for ref in session_refs:
            session = await manager.find_session(user, ref)
            await manager.remove_session(user, session.id)
            removed.append(session)
        return removed

    for session in run_async(ctx, body):
        click.echo(f"Removed session {session.id} ({session.title})")


@sessions.command("search")
@click.argument("text")
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
        snippet = " ".join(hit.snippet.split())
        click.echo(
            f"{hit.session_id:>6}  {short_time(hit.created)}  {hit.session_title[:30]:<30}  "
            f"{hit.role:<9}  {snippet}"
        )


@sessions.command("export")
@click.argument("session_ref")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="Output format.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
@click.pass_obj
def sessions_export(ctx: Context, session_ref: str, fmt: str, output: str | None) -> None:
    """Export a session as Markdown or JSON.

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
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"Wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@sessions.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def sessions_import(ctx: Context, files: tuple[str, ...]) -> None:
    """Import sessions exported with `sessions export -f json` (as new private sessions).

    \b
    Example:
      mschat sessions export 12 -f json -o notes.json
      mschat --db other.db sessions import notes.json
    """
    documents = []
    for name in files:
        try:
            documents.append((name, json.loads(Path(name).read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            fail(f"cannot read {name}: {exc}")

    async def body(services: Any) -> list[tuple[str, Any]]:
        manager = services.manager
        user = await manager.local_user()
        imported = []
        for name, data in documents:
            try:
                imported.append((name, await manager.import_session(user, data)))
            except MschatError as error:
                raise MschatError(f"{name}: {error}") from error
        return imported

    for name, session in run_async(ctx, body):
        click.echo(f"Imported {name} as session {session.id} ({session.message_count} messages)")
