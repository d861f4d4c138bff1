"""``mschat db``: the database's schema and counts, explicit upgrades, whole-history copies."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from mschat.cli.base import EXIT_INTERRUPTED, Context, fail
from mschat.cli.output import is_terminal, print_json, table
from mschat.visible import visible

if TYPE_CHECKING:
    from mschat.store import SchemaStatus, Store
    from mschat.store.copy import CopyReport

#: checksum digits shown in the copy's table (--json prints them whole)
SHOWN_DIGITS = 16


@click.group()
def db() -> None:
    """The database: its schema and counts, upgrades, copies between databases.

    \b
    Examples:
      mschat db status
      mschat db upgrade
      mschat db copy ~/.local/share/mschat/mschat.db postgresql://mschat@localhost/mschat
    """


# ---- status -------------------------------------------------------------------


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(ctx: Context, as_json: bool) -> None:
    """Show the database's backend, schema version, migrations and rows per table.

    Reads the database (--db, MSCHAT_DB or database.url) without changing it: a
    missing one is not created. The schema is current, outdated (run `mschat db
    upgrade`), newer (written by a newer mschat) or blank (no tables yet).

    \b
    Examples:
      mschat db status
      mschat --db postgresql://mschat@localhost/mschat db status --json
    """
    from mschat.store import inspect_schema

    info = inspect_schema(ctx.config().db)
    if as_json:
        print_json(
            {
                "backend": info.backend,
                "url": info.url,
                "state": info.state,
                "schema_version": info.version,
                "current_version": len(info.known),
                "applied": list(info.applied),
                "pending": info.pending if info.state != "newer" else [],
                "unknown": info.unknown,
                "counts": info.counts,
            }
        )
        return
    click.echo(f"backend     {info.backend}")
    click.echo(f"database    {visible(info.url, newlines=False)}")
    click.echo(f"schema      {_schema_line(info)}")
    click.echo(f"applied     {' '.join(info.applied) or '(none)'}")
    if info.state == "outdated":
        click.echo(f"pending     {' '.join(info.pending)}")
    if info.counts:
        click.echo()
        table([[name, f"{count:,}"] for name, count in info.counts.items()], ["table", "rows"])


def _schema_line(info: SchemaStatus) -> str:
    if info.state == "blank":
        return "none yet (blank: any mschat command creates the tables)"
    if info.state == "newer":
        unknown = ", ".join(info.unknown) or f"schema {info.version}"
        return f"{info.version}, newer: written by a newer mschat ({unknown}); upgrade mschat"
    if info.state == "outdated":
        count = len(info.pending)
        return (
            f"{info.version} of {len(info.known)}, outdated: {count} "
            f"migration{'s' * (count != 1)} pending (run `mschat db upgrade`)"
        )
    return f"{info.version}, current"


# ---- upgrade ------------------------------------------------------------------


@db.command("upgrade")
@click.pass_obj
def upgrade(ctx: Context) -> None:
    """Apply the pending migrations to the database and name each one.

    The servers (serve-api, serve-discord, the TUI) refuse an outdated schema
    unless started with --upgrade; this upgrades it beforehand. Back the
    database up first: a database once upgraded cannot be used by an older mschat.

    \b
    Examples:
      mschat db upgrade
      mschat --db postgresql://mschat@localhost/mschat db upgrade
    """
    from mschat.store import inspect_schema, open_store

    where = ctx.config().db
    before = inspect_schema(where)
    store = open_store(where, upgrade=True)
    try:
        applied = [name for name in store.applied_migrations() if name not in before.applied]
        shown = store.url
    finally:
        store.close()
    for name in applied:
        click.echo(f"Applied {name}")
    state = "created" if before.state == "blank" else "upgraded" if applied else "already current"
    click.echo(
        f"{visible(shown, newlines=False)}: {state} (schema {len(before.known)})"
        + ("" if applied else "; no migration to apply")
    )


# ---- copy ---------------------------------------------------------------------


@db.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("dest", metavar="DST")
@click.option(
    "--into-nonempty",
    is_flag=True,
    help="Copy into a destination that holds rows of its own (they are kept). "
    "Rows under the source's ids that are other rows are refused all the same.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows per transaction (and per read).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Copy although SRC has questions in its queue or answers being written on "
    "Discord (they are not copied).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (whole checksums).")
def copy(
    source: str, dest: str, into_nonempty: bool, batch_size: int, force: bool, as_json: bool
) -> None:
    """Copy a whole history from SRC to DST (paths or URLs), ids and all, and verify it.

    Users, sessions, messages, feedback, api_calls, interactions and idempotency
    keys are copied with their ids and every column, in id-ordered batches, then
    the live settings (but queue.paused); all are counted and checksummed on both
    sides. A blank DST is created first. Re-running is safe: only what DST lacks or
    holds differently is written, and a run after a complete copy changes nothing;
    an interrupted copy resumes where it stopped. A DST with rows that are not
    SRC's is refused unless --into-nonempty. The queue and the answers being
    written on Discord are not copied: a SRC with any is refused unless --force.
    Stop the servers that write to SRC while it runs.

    \b
    Examples:
      mschat db copy ~/.local/share/mschat/mschat.db postgresql://mschat@localhost/mschat
      mschat db copy postgresql://mschat@db1/mschat backup.db
    """
    from mschat.store import inspect_schema, open_store
    from mschat.store.copy import copy_history

    for role, name, where in (("source", "SRC", source), ("destination", "DST", dest)):
        info = inspect_schema(where)
        if role == "source" and info.state == "blank":
            fail(f"the source {visible(info.url, newlines=False)} holds no mschat database")
        if info.state == "outdated":
            fail(
                f"the {role} {visible(info.url, newlines=False)} has an older schema: "
                f"upgrade it first (mschat --db {name} db upgrade)"
            )
    src = open_store(source, upgrade=False)
    try:
        dst = open_store(dest, upgrade=False)
        try:
            started = time.monotonic()
            if not as_json:
                click.echo(f"Copying {_named(src)} to {_named(dst)}")
            try:
                report = copy_history(
                    src,
                    dst,
                    into_nonempty=into_nonempty,
                    force=force,
                    batch=batch_size,
                    progress=_Progress() if is_terminal(sys.stderr) else None,
                )
            except KeyboardInterrupt:
                _Progress.clear()
                click.echo(
                    "Interrupted: the destination keeps the batches copied so far; "
                    "run the same command again to resume.",
                    err=True,
                )
                sys.exit(EXIT_INTERRUPTED)
            _Progress.clear()
            _print_report(report, time.monotonic() - started, as_json)
        finally:
            dst.close()
    finally:
        src.close()
    if not report.verified:
        differ = [t.table for t in report.tables.values() if not t.verified]
        fail(
            f"verification failed: {', '.join(differ)} differ between the source and the "
            "destination (was the source written to during the copy? run it again)"
        )


def _named(store: Store) -> str:
    return f"{visible(store.url, newlines=False)} ({store.backend})"


def _print_report(report: CopyReport, seconds: float, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "changed": report.changed,
                "resumed": report.resumed,
                "verified": report.verified,
                "seconds": round(seconds, 3),
                "ids_advanced": report.ids_advanced,
                "tables": {
                    t.table: {
                        "source_rows": t.source_rows,
                        "dest_rows": t.dest_rows,
                        "own_rows": t.own_rows,
                        "inserted": t.inserted,
                        "updated": t.updated,
                        "source_checksum": t.source_checksum,
                        "dest_checksum": t.dest_checksum,
                        "verified": t.verified,
                    }
                    for t in report.tables.values()
                },
            }
        )
        return
    rows = []
    for t in report.tables.values():
        same = t.source_checksum == t.dest_checksum
        digest = t.source_checksum[:SHOWN_DIGITS]
        if not same:
            digest = f"SRC {digest} ≠ DST {t.dest_checksum[:SHOWN_DIGITS]}"
        counts = [f"{n:,}" for n in (t.source_rows, t.dest_rows, t.inserted, t.updated)]
        rows.append([t.table, *counts, digest])
    table(rows, ["table", "SRC rows", "DST rows", "inserted", "updated", "checksum (sha256)"])
    own = [f"{t.table} {t.own_rows:,}" for t in report.tables.values() if t.own_rows]
    if own:
        click.echo(f"DST also holds rows of its own, kept: {', '.join(own)}.")
    if report.ids_advanced:
        click.echo(f"New ids of {', '.join(report.ids_advanced)} start after every copied id.")
    if not report.changed:
        click.echo("Nothing to copy: DST already holds every row of SRC; nothing was changed.")
    elif report.verified:
        done = "Resumed an earlier copy, copied the rest" if report.resumed else "Copied"
        click.echo(
            f"{done} in {seconds:.1f} s and verified: every table has the same "
            "rows and checksum on both sides."
        )


class _Progress:
    """One line on a terminal's stderr, rewritten as the copy advances."""

    def __call__(self, phase: str, name: str, done: int, total: int) -> None:
        """Show how far ``phase`` got in table ``name``."""
        share = f" ({done * 100 // total}%)" if total else ""
        click.echo(f"\r\x1b[2K{phase} {name}: {done:,} of {total:,}{share}", nl=False, err=True)

    @staticmethod
    def clear() -> None:
        """Erase the progress line (on a terminal only)."""
        if is_terminal(sys.stderr):
            click.echo("\r\x1b[2K", nl=False, err=True)
