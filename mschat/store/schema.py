"""A database's schema against this mschat's migrations: blank, current, outdated or newer.

Both backends record the names of the migrations they applied, and share one
list of names, so one :class:`SchemaStatus` describes either. ``mschat db status``
prints it; the servers open the store with ``open_store(..., upgrade=False)``
and refuse an outdated schema with :class:`OutdatedSchema`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from mschat.core.errors import DatabaseError

SchemaState = Literal["blank", "current", "outdated", "newer"]


@dataclass(frozen=True)
class SchemaStatus:
    """What a database holds, read without changing it."""

    backend: str
    #: the database's path or URL, without its password
    url: str
    #: the migrations recorded in the database, in the order they ran
    applied: tuple[str, ...]
    #: the migrations this mschat knows, in order
    known: tuple[str, ...]
    #: the schema number the database carries (SQLite's user_version), if any
    marked_version: int = 0
    #: rows per mschat table (the tables that exist)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def pending(self) -> list[str]:
        """The migrations this mschat would apply."""
        return [name for name in self.known if name not in self.applied]

    @property
    def unknown(self) -> list[str]:
        """Recorded migrations this mschat does not know (a newer mschat's)."""
        return [name for name in self.applied if name not in self.known]

    @property
    def version(self) -> int:
        """The schema number: how many migrations the database has."""
        return max(len(self.applied), self.marked_version)

    @property
    def state(self) -> SchemaState:
        """blank (no mschat tables), current, outdated (pending migrations) or newer."""
        if self.unknown or self.marked_version > len(self.known):
            return "newer"
        if not self.applied:
            return "blank"
        return "outdated" if self.pending else "current"


class OutdatedSchema(DatabaseError):
    """A database at an older schema, opened by a command that does not upgrade it."""

    def __init__(self, url: str, pending: Sequence[str], *, command: str | None = None) -> None:
        self.url = url
        self.pending = list(pending)
        count = len(self.pending)
        retry = f"start it with `{command} --upgrade`" if command else "pass --upgrade"
        super().__init__(
            f"database {url} has an older schema ({count} migration{'s' * (count != 1)} "
            f"pending: {', '.join(self.pending)}); run `mschat db upgrade` or {retry}"
        )
