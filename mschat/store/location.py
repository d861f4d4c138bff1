"""Where a database is: a file path, ``sqlite:///path`` or ``postgresql://…``.

Only the scheme is read here, so telling the backends apart imports neither
sqlite-utils nor a PostgreSQL driver. A URL's password never leaves this module
unmasked: :func:`shown` is what errors, reprs and ``config show`` print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mschat.core.errors import ConfigError
from mschat.redact import redact_url

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")
SQLITE_SCHEMES = ("sqlite",)


@dataclass(frozen=True)
class Location:
    """A parsed database location: its backend and its path or URL."""

    backend: str  # "sqlite" or "postgresql"
    target: str  # the file path, or the full URL (which may hold a password)

    def __repr__(self) -> str:
        return f"Location({self.backend!r}, {shown(self.target)!r})"


def is_url(value: str) -> bool:
    """Whether ``value`` is written as a URL (``scheme://…``) rather than a path."""
    return bool(_SCHEME.match(value))


def shown(value: str | Path) -> str:
    """A path as it is, a URL with its credentials masked."""
    text = str(value)
    return redact_url(text) if is_url(text) else text


def parse(value: str | Path) -> Location:
    """The backend and target of a path or URL; an unknown scheme is a ConfigError."""
    text = str(value)
    match = _SCHEME.match(text)
    if match is None:
        return Location("sqlite", text)
    scheme = match.group(1).lower()
    if scheme in POSTGRES_SCHEMES:
        return Location("postgresql", text)
    if scheme in SQLITE_SCHEMES:
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(
                f"database URL {shown(text)} names no local file: write sqlite:///PATH "
                "(e.g. sqlite:///home/me/mschat.db)"
            )
        return Location("sqlite", unquote(parts.path))
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r} in {shown(text)}: "
        "give a file path, sqlite:///PATH or postgresql://USER@HOST/DBNAME"
    )
