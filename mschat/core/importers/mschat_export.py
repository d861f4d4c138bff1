"""mschat's own JSON export (``mschat sessions export -f json``)."""

from __future__ import annotations

import hashlib
import json
from typing import IO

from mschat.core.errors import InvalidInput
from mschat.core.export import parse_export
from mschat.core.importers.base import (
    ImportedSession,
    Sessions,
    not_importable,
    reference,
    title_for,
)

#: an export is read whole: larger files are refused rather than filling memory
MAX_EXPORT_BYTES = 256 << 20


def read(name: str, stream: IO[bytes]) -> Sessions:
    """The one session of an export file (``stream`` starts with ``{``)."""
    raw = stream.read(MAX_EXPORT_BYTES + 1)
    if len(raw) > MAX_EXPORT_BYTES:
        raise InvalidInput(f"{name} is too large for an mschat export (over 256 MB)")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise not_importable(name) from None
    if not (isinstance(data, dict) and "session" in data and "messages" in data):
        raise not_importable(name)
    try:
        fields, rows = parse_export(data)
    except InvalidInput as error:
        raise InvalidInput(f"{name}: {error}") from None
    yield ImportedSession(
        # the same file imported again is skipped; another export of the session is not
        ref=reference("mschat", hashlib.sha256(raw).hexdigest()),
        title=title_for(fields["title"], rows, "Imported session"),
        messages=rows,
        model=fields["model"],
        system_msg=fields["system_msg"],
        created=fields["created"],
        updated=fields["updated"],
    )
