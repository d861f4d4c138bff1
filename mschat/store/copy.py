"""Copy a whole history from one database to another, ids and all, and verify it.

Any two stores, either backend on either side. Every table of ``TABLES`` is
copied parents first, in id-ordered batches of ``batch`` rows, each batch one
transaction of the destination: memory stays bounded, and an interrupted copy
keeps the batches it wrote. The source and the destination are read side by
side in id order (a merge of the two streams), so every run writes only the
rows the destination lacks or holds differently, and a second run after a
complete copy writes nothing.

Two columns may point forward (``users.current_session_id`` at sessions,
``sessions.forked_from_id`` at a session), and one is kept by triggers
(``sessions.message_count``): they are written last, once every table is in.
Then each table's ids are advanced past the source's, so a new row never takes a
copied id, or the id of a row the source deleted.

What the destination may hold, compared row by row (same id) with the source:

- nothing, or rows equal to the source's: they are kept (a resumed or repeated copy);
- the same rows (same identity: kind and external id, creator, session, times of
  creation) with other values, e.g. renamed since: the source's values win;
- rows of ids the source has not (``own`` rows): refused unless ``into_nonempty``,
  which keeps them;
- other rows under the source's ids: always refused, before anything is written,
  since ids must stay what they are (``-s 12``, Discord buttons, API headers name
  them) and two rows cannot both be 12.

Each table is then verified: its row count and a checksum of a canonical
serialisation of its rows in id order (times as UTC ISO text with microseconds,
flags as 0/1, NULL as null), which reads the same from either backend.

The live settings (``settings``, keyed by name, a few rows) are copied too, once
every table is in, with the same rules (a key only the destination has is one of
its own rows) and verified in key order; ``queue.paused`` is not: it is the
source's state, not its configuration. The queue and the reply surfaces are the
state of running servers (questions waiting or answered, Discord messages being
written): they are never copied, and a source holding any is refused unless
``force``, since the copy would leave them behind.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mschat.core.errors import DatabaseError
from mschat.core.models import utcnow
from mschat.store import records
from mschat.store.contract import TABLES, Store

Row = dict[str, Any]

#: what a copy reports while it runs: (phase, table, rows done, rows in all)
Progress = Callable[[str, str, int, int], None]

BATCH = 1000

#: the live settings, copied after :data:`TABLES` (keyed by name, not by id)
SETTINGS = "settings"
#: what a copy copies and verifies, in order
COPIED = (*TABLES, SETTINGS)
#: live settings a copy leaves out: the source's state, not its configuration (an
#: operator pauses the source to copy it; the destination should not start paused)
TRANSIENT_SETTINGS = frozenset({"queue.paused"})

#: columns written once every table is in, and what a new row holds meanwhile
DEFERRED: dict[str, dict[str, Any]] = {
    "users": {"current_session_id": None},
    "sessions": {"forked_from_id": None, "message_count": 0},
}

#: the columns that make two rows of one id the same row (its values may differ)
IDENTITY: dict[str, tuple[str, ...]] = {
    "users": ("kind", "external_id", "created"),
    "sessions": ("creator_id", "created"),
    "messages": ("session_id", "role", "created"),
    "api_calls": ("started",),
    "feedback": ("message_id", "user_id", "created"),
    "interactions": ("source", "kind", "created"),
    "idempotency_keys": ("user_id", "key", "created"),
    SETTINGS: ("key",),
}

#: unique keys besides the id: a new row must not take one a destination's own row has
UNIQUE: dict[str, tuple[str, ...]] = {
    "users": ("kind", "external_id"),
    "idempotency_keys": ("user_id", "key"),
}

TIME_COLUMNS = frozenset({"created", "updated", "modified", "started", "lease_until"})
FLAG_COLUMNS = frozenset(records.USER_BOOLEANS + records.SESSION_BOOLEANS)


class CopyRefused(DatabaseError):
    """The destination holds what a copy must not overwrite or mix with; nothing was written."""


@dataclass
class TableCopy:
    """One table's copy: its rows on each side, what was written, its checksums."""

    table: str
    source_rows: int = 0
    #: rows of the destination under the source's ids
    dest_rows: int = 0
    #: rows only the destination has (kept with ``into_nonempty``)
    own_rows: int = 0
    inserted: int = 0
    updated: int = 0
    source_checksum: str = ""
    dest_checksum: str = ""

    @property
    def verified(self) -> bool:
        """Whether the destination holds exactly the source's rows (own rows aside)."""
        return (self.source_rows, self.source_checksum) == (self.dest_rows, self.dest_checksum)


@dataclass
class CopyReport:
    """What a copy did, table by table."""

    tables: dict[str, TableCopy] = field(default_factory=dict)
    #: tables whose new ids had to be moved past the source's
    ids_advanced: list[str] = field(default_factory=list)
    #: the destination held some of the source's rows already (an earlier copy)
    resumed: bool = False

    @property
    def changed(self) -> bool:
        """Whether this copy wrote anything."""
        return bool(self.ids_advanced) or any(t.inserted or t.updated for t in self.tables.values())

    @property
    def verified(self) -> bool:
        """Whether every table's count and checksum are the same on both sides."""
        return all(t.verified for t in self.tables.values())


def copy_history(
    source: Store,
    dest: Store,
    *,
    into_nonempty: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
    force: bool = False,
) -> CopyReport:
    """Copy every row of ``source`` into ``dest`` with its id, then verify both sides.

    Raises :class:`CopyRefused` (before writing anything) when ``dest`` holds
    other rows under the source's ids, or rows of its own without
    ``into_nonempty``, or when ``source`` has questions in its queue or answers
    being written on Discord (which are not copied) without ``force``.
    """
    if source.identity == dest.identity:
        raise CopyRefused(f"source and destination are the same database ({source.url})")
    if not force:
        _refuse_in_use(source)
    copier = _Copier(source, dest, batch, progress or _quiet)
    report = CopyReport({table: TableCopy(table) for table in COPIED})
    totals = {table: copier.count(source, table) for table in COPIED}
    empty = {table for table in COPIED if not copier.count(dest, table)}
    if len(empty) < len(COPIED):
        copier.check(report, totals, empty, into_nonempty=into_nonempty)
        if report.verified:  # the check read both sides whole: nothing is missing
            report.ids_advanced = copier.advance_ids()
            return report
    writer = _Writer(dest)
    try:
        copier.copy(report, totals, empty, writer)
    finally:
        writer.close()
    report.ids_advanced = copier.advance_ids()
    copier.verify(report, totals)
    return report


def _quiet(phase: str, table: str, done: int, total: int) -> None:
    """No progress report."""


def _refuse_in_use(source: Store) -> None:
    """Refuse a source with questions queued or answers being written: not copied."""
    status = source.queue_status(utcnow())
    queued = status.waiting + sum(status.running.values())
    writing = source.count_reply_surfaces()
    if queued or writing:
        raise CopyRefused(
            f"the source is in use: {queued} question(s) in its queue and {writing} "
            "answer(s) being written on Discord would be left behind; pause it "
            "(mschat --db SRC ops pause), stop its servers once those are done, and copy "
            "again, or pass --force to copy without them"
        )


class _Copier:
    """The passes of one copy over the two stores."""

    def __init__(self, source: Store, dest: Store, batch: int, progress: Progress) -> None:
        self.source = source
        self.dest = dest
        self.batch = max(1, batch)
        self.progress = progress

    # ---- reading both sides -------------------------------------------------

    def count(self, store: Store, table: str) -> int:
        """How many rows of ``table`` (or live settings) a copy finds in ``store``."""
        return len(self.settings(store)) if table == SETTINGS else store.count_rows(table)

    def settings(self, store: Store) -> dict[str, Row]:
        """The live settings a copy carries, by name (a few rows: read whole)."""
        return {
            row.key: row._asdict() for row in store.settings() if row.key not in TRANSIENT_SETTINGS
        }

    def pairs(self, table: str) -> Iterator[tuple[Row | None, Row | None]]:
        """(source row, destination row) pairs of one table, or of the settings by name."""
        if table != SETTINGS:
            yield from self.merge(table)
            return
        mine, theirs = self.settings(self.source), self.settings(self.dest)
        for key in sorted(mine.keys() | theirs.keys()):
            yield mine.get(key), theirs.get(key)

    def rows(self, store: Store, table: str) -> Iterator[Row]:
        """Every row of ``table`` in id order, a page at a time.

        A short page ends the stream for good: rows written behind the merge
        afterwards (by this copy) are never read back as the destination's.
        """
        after = 0
        while True:
            page = store.read_rows(table, after_id=after, limit=self.batch)
            yield from page
            if len(page) < self.batch:
                return
            after = page[-1]["id"]

    def merge(
        self, table: str, *, read_dest: bool = True
    ) -> Iterator[tuple[Row | None, Row | None]]:
        """(source row, destination row) pairs of one id in id order; None for a missing one."""
        source = self.rows(self.source, table)
        dest = self.rows(self.dest, table) if read_dest else iter(())
        mine, theirs = next(source, None), next(dest, None)
        while mine is not None or theirs is not None:
            if theirs is None or (mine is not None and mine["id"] < theirs["id"]):
                yield mine, None
                mine = next(source, None)
            elif mine is None or theirs["id"] < mine["id"]:
                yield None, theirs
                theirs = next(dest, None)
            else:
                yield mine, theirs
                mine, theirs = next(source, None), next(dest, None)

    # ---- the passes ---------------------------------------------------------

    def check(
        self, report: CopyReport, totals: dict[str, int], empty: set[str], *, into_nonempty: bool
    ) -> None:
        """Compare both sides whole, before writing: refuse what must not be mixed.

        A table the destination has no rows of needs no reading: it is all to copy.
        """
        conflicts: list[str] = []
        own: list[str] = []
        for table in COPIED:
            result = report.tables[table]
            sums = _Checksums()
            if table in empty:
                sums.source_rows = totals[table]
                sums.finish(result)
                if totals[table]:
                    result.source_checksum = ""  # not read: unknown
                continue
            taken: set[tuple[Any, ...]] = set()
            wanted: dict[tuple[Any, ...], int] = {}
            for done, (mine, theirs) in enumerate(self.pairs(table), 1):
                if done % self.batch == 0:
                    self.progress("checking", table, min(done, totals[table]), totals[table])
                sums.add(mine, theirs)
                if mine is not None and theirs is not None:
                    report.resumed = True
                    if _identity(table, mine) != _identity(table, theirs):
                        conflicts.append(f"{table} {mine['id']}")
                elif theirs is not None:
                    own.append(f"{table} {theirs.get('id', theirs.get('key'))}")
                    if table in UNIQUE:
                        taken.add(_key(table, theirs))
                elif mine is not None and table in UNIQUE:
                    wanted[_key(table, mine)] = mine["id"]
            conflicts += [
                f"{table} {wanted[key]}" for key in sorted(taken & wanted.keys(), key=str)
            ]
            sums.finish(result)
        if conflicts:
            raise CopyRefused(
                f"the destination holds other rows under {len(conflicts)} of the source's ids "
                f"(first: {conflicts[0]}); ids cannot change, so nothing was copied: "
                "copy into an empty database"
            )
        if own and not into_nonempty:
            raise CopyRefused(
                f"the destination is not empty: it holds {len(own)} rows the source has not "
                f"(first: {own[0]}); copy into an empty database, or pass --into-nonempty "
                "to add the source's rows to it"
            )

    def copy(
        self, report: CopyReport, totals: dict[str, int], empty: set[str], writer: _Writer
    ) -> None:
        """Write what the destination lacks or holds differently, table by table.

        The destination's rows of a table it had none of when the copy began are
        not read: they are all this copy's.
        """
        for table in TABLES:
            result = report.tables[table]
            placeholders = DEFERRED.get(table, {})
            new: list[Row] = []
            changed: list[Row] = []
            done = 0
            for mine, theirs in self.merge(table, read_dest=table not in empty):
                if mine is None:
                    continue
                done += 1
                if theirs is None:
                    new.append({**mine, **placeholders})
                elif _identity(table, mine) != _identity(table, theirs):
                    raise CopyRefused(
                        f"{table} {mine['id']} became another row during the copy; "
                        "nothing more was copied"
                    )
                elif _canonical(mine) != _canonical(theirs):
                    result.updated += 1
                    # what is written last stays as the destination has it for now
                    wanted = {**mine, **{key: theirs[key] for key in placeholders}}
                    if _canonical(wanted) != _canonical(theirs):
                        changed.append(wanted)
                if len(new) + len(changed) >= self.batch:
                    result.inserted += len(new)
                    new, changed = writer.submit(table, new, changed)
                if done % self.batch == 0:
                    self.progress("copying", table, done, totals[table])
            result.inserted += len(new)
            writer.submit(table, new, changed)
            self.progress("copying", table, done, totals[table])
        writer.flush()  # the rows the references point at are all in
        for table in DEFERRED:
            self.finish_deferred(table, totals[table], writer)
        writer.flush()
        self.copy_settings(report.tables[SETTINGS], totals[SETTINGS])

    def copy_settings(self, result: TableCopy, total: int) -> None:
        """Write the source's live settings the destination lacks or holds otherwise
        (each with the source's time of change; the destination's own are kept)."""
        for mine, theirs in self.pairs(SETTINGS):
            if mine is None or (theirs is not None and _canonical(mine) == _canonical(theirs)):
                continue
            self.dest.set_setting(mine["key"], mine["value"], mine["updated_by"], mine["updated"])
            if theirs is None:
                result.inserted += 1
            else:
                result.updated += 1
        self.progress("copying", SETTINGS, total, total)

    def finish_deferred(self, table: str, total: int, writer: _Writer) -> None:
        """Write the forward references and counts of one table, now that every row is in."""
        changed: list[Row] = []
        for done, (mine, theirs) in enumerate(self.merge(table), 1):
            if mine is not None and theirs is not None and _canonical(mine) != _canonical(theirs):
                changed.append(mine)
            if len(changed) >= self.batch:
                _, changed = writer.submit(table, [], changed)
            if done % self.batch == 0:
                self.progress("linking", table, min(done, total), total)
        writer.submit(table, [], changed)

    def advance_ids(self) -> list[str]:
        """Move each table's next id past every id the source or the destination handed out."""
        return [
            table
            for table in TABLES
            if self.dest.advance_ids(
                table, max(self.source.last_id(table), self.dest.last_id(table))
            )
        ]

    def verify(self, report: CopyReport, totals: dict[str, int]) -> None:
        """Count and checksum every table (and the settings) on both sides."""
        for table in COPIED:
            result = report.tables[table]
            sums = _Checksums()
            for done, (mine, theirs) in enumerate(self.pairs(table), 1):
                if done % self.batch == 0:
                    self.progress("verifying", table, min(done, totals[table]), totals[table])
                sums.add(mine, theirs)
            sums.finish(result)


class _Writer:
    """Writes the destination's batches in order, one transaction each.

    A store that serves several threads (PostgreSQL) gets them from a thread of
    its own: the next batch is read and prepared while the server indexes the
    last one's words. SQLite does its work in one connection, mostly under
    Python's lock: it gets them from the copying thread. An error of a batch (its
    transaction rolled back) is raised by the next :meth:`submit` or
    :meth:`flush`; the batches after it are not written.
    """

    def __init__(self, dest: Store) -> None:
        self.dest = dest
        self.jobs: queue.Queue[tuple[str, list[Row], list[Row]] | None] = queue.Queue(1)
        self.error: BaseException | None = None
        self.stopped = False
        self.thread: threading.Thread | None = None
        if dest.threads > 1:
            self.thread = threading.Thread(target=self._run, name="mschat-copy-writer", daemon=True)
            self.thread.start()

    def submit(self, table: str, new: list[Row], changed: list[Row]) -> tuple[list[Row], list[Row]]:
        """Write one batch, or queue it (waiting while one is queued); fresh lists to fill."""
        self._raise()
        if self.thread is None:
            self.write(table, new, changed)
        elif new or changed:
            self.jobs.put((table, new, changed))
        return [], []

    def flush(self) -> None:
        """Wait until every queued batch is written."""
        self.jobs.join()
        self._raise()

    def close(self) -> None:
        """End the thread once the batch it writes is done; a batch still queued is dropped."""
        self.stopped = True
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                if not self.stopped:
                    self.write(*job)
            except BaseException as exc:  # the copying thread raises it
                self.error = exc
                self.stopped = True
            finally:
                self.jobs.task_done()

    def write(self, table: str, new: list[Row], changed: list[Row]) -> None:
        """One transaction of the destination: a batch's new rows and changed rows."""
        if not new and not changed:
            return
        with self.dest.write():
            self.dest.insert_rows(table, new)
            self.dest.insert_rows(table, changed, replace=True)


class _Checksums:
    """The two checksums of one table: the source's rows, the destination's under their ids."""

    def __init__(self) -> None:
        self.source = hashlib.sha256()
        self.dest = hashlib.sha256()
        self.source_rows = self.dest_rows = self.own_rows = 0

    def add(self, mine: Row | None, theirs: Row | None) -> None:
        """Count one pair of the merge."""
        if mine is None:
            self.own_rows += 1
            return
        self.source_rows += 1
        self.source.update(_canonical(mine))
        if theirs is not None:
            self.dest_rows += 1
            self.dest.update(_canonical(theirs))

    def finish(self, result: TableCopy) -> None:
        """Store the counts and checksums in ``result``."""
        result.source_rows, result.dest_rows = self.source_rows, self.dest_rows
        result.own_rows = self.own_rows
        result.source_checksum = self.source.hexdigest()
        result.dest_checksum = self.dest.hexdigest()


# ---- the canonical form of a row --------------------------------------------


def checksum(rows: Iterator[Row]) -> str:
    """The checksum of rows in the order given (sha256 of their canonical lines)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(_canonical(row))
    return digest.hexdigest()


def _canonical(row: Row) -> bytes:
    """One line of JSON: the row's values in the order of its column names, normalised."""
    names = tuple(row)
    form = _FORMS.get(names)
    if form is None:
        form = _FORMS[names] = _Form(names)
    return form.line(row)


class _Form:
    """The canonical line of rows of one set of columns (a table's)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.columns = sorted(names)
        self.times = [i for i, name in enumerate(self.columns) if name in TIME_COLUMNS]
        self.flags = [i for i, name in enumerate(self.columns) if name in FLAG_COLUMNS]

    def line(self, row: Row) -> bytes:
        """The row's line (ends with a newline)."""
        values = [row[name] for name in self.columns]
        for index in self.times:
            if isinstance(values[index], str):
                values[index] = _time(values[index])
        for index in self.flags:
            if values[index] is not None:
                values[index] = int(bool(values[index]))
        return _ENCODER.encode(values).encode("utf-8", "surrogatepass") + b"\n"


#: the canonical forms met so far, by column names (one per table)
_FORMS: dict[tuple[str, ...], _Form] = {}


def _normal(column: str, value: Any) -> Any:
    """A value as both backends give it: times as UTC ISO text, flags as 0/1."""
    if value is None:
        return None
    if column in TIME_COLUMNS and isinstance(value, str):
        return _time(value)
    if column in FLAG_COLUMNS or isinstance(value, bool):
        return int(bool(value))
    return value


def _time(value: str) -> str:
    """``utcnow()``'s form (``2025-01-02T03:04:05.000006+00:00``) of an ISO time."""
    if len(value) == 32 and value[10] == "T" and value[19] == "." and value[26:] == "+00:00":
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # not a time: compared as the text it is
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # as PostgreSQL reads it (its sessions run in UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _json_default(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _identity(table: str, row: Row) -> tuple[Any, ...]:
    return tuple(_normal(column, row.get(column)) for column in IDENTITY[table])


def _key(table: str, row: Row) -> tuple[Any, ...]:
    return tuple(_normal(column, row.get(column)) for column in UNIQUE[table])
