"""The ``mschat`` command line: one-shot asks, session/user admin, and launchers.

Front ends (TUI, Discord bot, HTTP API) are imported only by their commands so
``mschat ask`` starts fast.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from mschat import __version__
from mschat.core.errors import MschatError

T = TypeVar("T")

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


class Context:
    """What the group passes to its commands: the --db override, lazily built services."""

    def __init__(self, db: str | None) -> None:
        self.db = db

    def services(self, *, server: bool = False, notice: bool = False) -> Any:
        """Load the config and open the store (errors become one-line messages).

        ``server``: a long-running aiohttp front end, whose provider requests then go
        through aiohttp too (half the CPU of httpx's own stack per streamed reply).
        ``notice``: the command talks to a model, so say on stderr when it is the
        bundled offline one.
        """
        from mschat.config import load_config
        from mschat.core.services import build_services

        transport = None
        if server:
            from mschat.aiohttp_transport import AiohttpTransport

            transport = AiohttpTransport
        services = build_services(load_config(db=self.db), async_transport=transport)
        if notice and services.registry.using_bundled:
            click.echo(services.registry.bundled_notice(), err=True)
        return services


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    """Print a one-line error on stderr and exit."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def run_async(ctx: Context, body: Callable[[Any], Awaitable[T]], *, notice: bool = False) -> T:
    """Build services, run ``body(services)`` on an event loop, close them, map errors.

    ``notice``: the command talks to a model, so say which when it is the bundled one.
    """

    async def main() -> T:
        services = ctx.services(notice=notice)
        try:
            return await body(services)
        finally:
            await services.aclose()

    try:
        return asyncio.run(main())
    except MschatError as error:
        fail(str(error))
    except KeyboardInterrupt:
        click.echo("\nInterrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    raise AssertionError("unreachable")


class MschatGroup(click.Group):
    """Translates mschat errors into one-line messages and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MschatError as error:
            fail(str(error))


@click.group(cls=MschatGroup, invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="mschat")
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    envvar="MSCHAT_DB",
    help="Database file (default: $MSCHAT_HOME/mschat.db or the user data dir).",
)
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """mschat: multi-user, multi-session LLM chat.

    Run with no command to open the terminal UI.

    \b
    Examples:
      mschat                         open the TUI
      mschat ask "What is SQLite?"   one question, streamed
      mschat ask -c "And WAL?"       continue the last session
      mschat sessions list           your sessions
      mschat serve-api               the HTTP API on 127.0.0.1:5000
    """
    ctx.obj = Context(db)
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


# ---- ask ---------------------------------------------------------------------


def read_prompt(prompt: str | None) -> str:
    """The prompt from the argument and/or piped stdin (stdin is appended as context)."""
    piped = ""
    stdin = sys.stdin
    if stdin is not None and not stdin.isatty():
        piped = stdin.read()
    if prompt and piped.strip():
        return f"{prompt}\n\n{piped}"
    return prompt if prompt is not None else piped


@cli.command()
@click.argument("prompt", required=False)
@click.option("-s", "--session", "session_ref", help="Session id or title to continue.")
@click.option(
    "-c", "--continue", "continue_", is_flag=True, help="Continue the most recent session."
)
@click.option("--new", "new_session", is_flag=True, help="Start a new session (the default).")
@click.option("-m", "--model", help="Model name, provider/model or alias.")
@click.option("--system", help="System message for this session.")
@click.option("--temperature", type=float, help="Sampling temperature (0-2).")
@click.option("--max-tokens", type=int, help="Maximum tokens in the reply.")
@click.option("--no-stream", is_flag=True, help="Print the reply once it is complete.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: reply, session, usage."
)
@click.option("-u", "--usage", "show_usage", is_flag=True, help="Print token usage on stderr.")
@click.pass_obj
def ask(
    ctx: Context,
    prompt: str | None,
    session_ref: str | None,
    continue_: bool,
    new_session: bool,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    no_stream: bool,
    as_json: bool,
    show_usage: bool,
) -> None:
    """Ask one question and stream the answer.

    The prompt comes from the argument, from piped stdin, or both (stdin is
    appended to the prompt as context). Each ask starts a new session unless
    -c or -s is given.

    \b
    Examples:
      mschat ask "Explain WAL mode in two sentences"
      mschat ask -c "Now compare it with rollback journals"
      cat error.log | mschat ask "What went wrong?"
      mschat ask -m openai/gpt-4o-mini --json "Hi" | jq .reply
    """
    if sum([bool(session_ref), continue_, new_session]) > 1:
        raise click.UsageError("use only one of --session, --continue and --new")
    text = read_prompt(prompt)
    if not text.strip():
        fail("the prompt is empty; pass it as an argument or on stdin")

    from mschat.render import AskRenderer

    renderer = AskRenderer(
        stream=not no_stream and not as_json, as_json=as_json, show_usage=show_usage
    )

    async def body(services: Any) -> int:
        manager = services.manager
        user = await manager.local_user()
        session_id = None
        if session_ref:
            session_id = (await manager.find_session(user, session_ref)).id
        elif continue_:
            last = await manager.last_session(user)
            if last is None:
                raise MschatError("there is no session to continue; ask without -c first")
            session_id = last.id
        events = manager.ask(
            user,
            text,
            session_id=session_id,
            new_session=session_id is None,
            model=model,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        return await renderer.consume(events)

    try:
        code = run_async(ctx, body, notice=True)
    except SystemExit as exit_:
        if exit_.code == EXIT_INTERRUPTED:
            renderer.interrupted()
        raise
    sys.exit(code)


# ---- sessions ----------------------------------------------------------------


@cli.group(cls=MschatGroup)
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


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _short_time(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


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
        _print_json([asdict(s) for s in found])
        return
    if not found:
        click.echo('No sessions yet. Start one with: mschat ask "..."')
        return
    _table(
        [
            [
                str(s.id),
                s.title[:40],
                s.creator_name or "",
                s.model or "",
                str(s.message_count),
                "public" if s.public else "private",
                _short_time(s.updated),
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
        _print_json({"session": asdict(session), "messages": [asdict(m) for m in messages]})
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
        _print_json([asdict(h) for h in hits])
        return
    if not hits:
        click.echo("No matches.")
        return
    for hit in hits:
        snippet = " ".join(hit.snippet.split())
        click.echo(
            f"{hit.session_id:>6}  {_short_time(hit.created)}  {hit.session_title[:30]:<30}  "
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


# ---- users -------------------------------------------------------------------


@cli.group(cls=MschatGroup)
def users() -> None:
    """List, show and change users (local, Discord and API).

    \b
    Examples:
      mschat users list --kind discord
      mschat users show 3
      mschat users set 3 --status active --temperature 0.5
    """


@users.command("list")
@click.option("--kind", type=click.Choice(["local", "discord", "api"]), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def users_list(ctx: Context, kind: str | None, as_json: bool) -> None:
    """List users, most recently active first.

    \b
    Example:
      mschat users list --kind discord
    """

    async def body(services: Any) -> list[Any]:
        await services.manager.local_user()
        return await services.manager.list_users(kind)

    found = run_async(ctx, body)
    if as_json:
        _print_json([asdict(u) for u in found])
        return
    _table(
        [
            [
                str(u.id),
                u.kind,
                u.external_id,
                u.name,
                u.status,
                u.model or "(default)",
                str(u.current_session_id or ""),
                _short_time(u.updated),
            ]
            for u in found
        ],
        ["ID", "KIND", "EXTERNAL ID", "NAME", "STATUS", "MODEL", "CURRENT", "UPDATED"],
    )


@users.command("show")
@click.argument("user_ref", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def users_show(ctx: Context, user_ref: str | None, as_json: bool) -> None:
    """Show a user's settings and sessions (default: you).

    \b
    Examples:
      mschat users show
      mschat users show 3
    """

    async def body(services: Any) -> tuple[Any, list[Any]]:
        manager = services.manager
        me = await manager.local_user()
        user = await manager.find_user(user_ref) if user_ref else me
        own = await manager.list_sessions(user, include_public=False, limit=25)
        return user, own

    user, own = run_async(ctx, body)
    if as_json:
        _print_json({"user": asdict(user), "sessions": [asdict(s) for s in own]})
        return
    for key, value in asdict(user).items():
        click.echo(f"{key:>18}: {value}")
    click.echo(f"{'sessions':>18}: " + (", ".join(f"{s.id} {s.title}" for s in own) or "none"))


@users.command("set")
@click.argument("user_ref", required=False)
@click.option("--name", help="Display name.")
@click.option("--status", type=click.Choice(["new", "active", "disabled"]), help="Status.")
@click.option("--system", "system_msg", help="Default system message ('' clears it).")
@click.option("--max-tokens", type=int, help="Max tokens of a reply.")
@click.option("--temperature", type=float, help="Temperature (0-2).")
@click.option("--model", help="Default model of new sessions ('' for the global default).")
@click.option("--show-public/--no-show-public", default=None, help="List others' public sessions.")
@click.option("--attach/--no-attach", default=None, help="New sessions become current.")
@click.option("--admin/--no-admin", default=None, help="Admin rights (admin only).")
@click.option(
    "--rate-limit", type=int, help="Questions allowed per 6 hours (admin only; 0 blocks)."
)
@click.option("--ignored/--not-ignored", default=None, help="Ignore the user (admin only).")
@click.pass_obj
def users_set(ctx: Context, user_ref: str | None, **changes: Any) -> None:
    """Change a user's settings (default: you; others need admin).

    \b
    Examples:
      mschat users set --temperature 0.3 --max-tokens 1200
      mschat users set 3 --status active --attach
    """
    values = {k: v for k, v in changes.items() if v is not None}
    if not values:
        raise click.UsageError("nothing to change; see --help for the settings")

    async def body(services: Any) -> Any:
        manager = services.manager
        me = await manager.local_user()
        user = await manager.find_user(user_ref) if user_ref else me
        return await manager.update_user(me, user.id, **values)

    user = run_async(ctx, body)
    click.echo(f"Updated user {user.id} ({user.label}): " + ", ".join(sorted(values)))


# ---- models and config ---------------------------------------------------------


@cli.command()
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
        _print_json(data)
        return
    if data["models"]:
        _table(
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


@cli.group(cls=MschatGroup)
def config() -> None:
    """Show where the config lives and what it says.

    \b
    Examples:
      mschat config path
      mschat config show
    """


@config.command("path")
@click.option("--database", is_flag=True, help="Print the database's path instead.")
@click.pass_obj
def config_path_cmd(ctx: Context, database: bool) -> None:
    """Print the config file's path (or, with --database, the database's).

    \b
    Examples:
      mschat config path
      sqlite-utils tables "$(mschat config path --database)" --counts
    """
    from mschat.config import config_path, db_path

    if database:
        click.echo(str(Path(ctx.db) if ctx.db else db_path()))
    else:
        click.echo(str(config_path()))


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def config_show(ctx: Context, as_json: bool) -> None:
    """Print the merged settings (file + environment) with secrets masked."""
    from mschat.config import load_config

    loaded = load_config(db=ctx.db)
    data = {"file": str(loaded.file), "database": str(loaded.db), **loaded.masked()}
    if as_json:
        _print_json(data)
        return
    click.echo(f"# file: {data.pop('file')}\n# database: {data.pop('database')}")
    for section, values in data.items():
        if not values:
            continue
        if section == "providers":
            for name, entry in values.items():
                click.echo(f"\n[providers.{name}]")
                for key, value in entry.items():
                    click.echo(f"{key} = {json.dumps(value)}")
            continue
        click.echo(f"\n[{section}]")
        for key, value in values.items():
            if value is None:
                continue
            origin = loaded.origins.get(f"{section}.{key}")
            suffix = (
                f"  # from {origin}" if origin and origin.startswith(("MSCHAT", "DISC")) else ""
            )
            click.echo(f"{key} = {json.dumps(value)}{suffix}")


# ---- front ends --------------------------------------------------------------


@cli.command()
@click.option("--user", "user_ref", help="Open in another user's view (admin).")
@click.pass_obj
def tui(ctx: Context, user_ref: str | None) -> None:
    """Open the terminal UI (the default command).

    \b
    Examples:
      mschat
      mschat tui --user 3
    """
    try:
        from mschat.tui.app import run as run_tui  # type: ignore[import-not-found]
    except ImportError as exc:
        fail(f"the terminal UI is not available: {exc}")
    services = ctx.services(notice=True)
    run_tui(services, user_ref=user_ref)


@cli.command("serve-api")
@click.option("--host", help="Address to bind (default 127.0.0.1; others need api.token).")
@click.option("--port", type=int, help="Port (default 5000).")
@click.pass_obj
def serve_api(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the HTTP API: /chat, /chat-stream, sessions REST and OpenAI-compatible /v1.

    \b
    Examples:
      mschat serve-api
      MSCHAT_API_TOKEN=secret mschat serve-api --host 0.0.0.0 --port 8080
    """
    from mschat.api.server import run as run_api  # type: ignore[import-not-found]

    services = ctx.services(server=True, notice=True)
    run_api(services, host=host, port=port)


@cli.command("serve-discord")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level (default: discord.log_level).",
)
@click.pass_obj
def serve_discord(ctx: Context, log_level: str | None) -> None:
    """Run the Discord bot (token from discord.token or MSCHAT_DISCORD_TOKEN).

    \b
    Example:
      MSCHAT_DISCORD_TOKEN=... mschat serve-discord --log-level info
    """
    from mschat.discord.bot import run as run_bot  # type: ignore[import-not-found]

    services = ctx.services(server=True, notice=True)
    run_bot(services, log_level=log_level)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(standalone_mode=True)
    except MschatError as error:  # errors raised while building the group's context
        fail(str(error))


if __name__ == "__main__":  # pragma: no cover
    main()
