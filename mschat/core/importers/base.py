"""What every reader produces: conversations as rows ready to store, and the shared checks."""

from __future__ import annotations

import math
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mschat.core.errors import InvalidInput
from mschat.core.titles import clean_title, make_title

#: a reference longer than this is stored as its hash
MAX_REF = 200
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def not_importable(name: str) -> InvalidInput:
    """The one line for a file mschat cannot import."""
    return InvalidInput(
        f"{name} is not an mschat export, a ChatGPT conversations.json or an llm logs.db"
    )


@dataclass
class ImportedSession:
    """One conversation read from a file, ready to become a private session."""

    #: stable reference of this conversation as it is now: imported once per user
    ref: str | None
    title: str
    #: rows for ``Store.insert_messages``; user turns get the importing user as author
    messages: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    system_msg: str | None = None
    created: str | None = None
    updated: str | None = None


#: what every reader returns: conversations read one at a time, closable
Sessions = Generator[ImportedSession, None, None]


def text(value: Any) -> str:
    """A string from a file, with lone surrogates (half an emoji) made U+FFFD.

    SQLite stores UTF-8, which cannot hold them; every other character, control
    characters included, is stored as it came (front ends make them visible).
    """
    if not isinstance(value, str):
        return ""
    return _SURROGATE.sub("\ufffd", value)


def optional_text(value: Any) -> str | None:
    """``text(value)``, or None when the value is not a non-empty string."""
    return text(value) or None


def count(value: Any) -> int | None:
    """A non-negative integer (token count, milliseconds), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def iso_time(value: Any) -> str | None:
    """ISO-8601 UTC text, as the database stores it, from epoch seconds or ISO text."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                return None
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # llm writes naive UTC times
        else:
            return None
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    except (ValueError, OverflowError, OSError):
        return None


def reference(kind: str, *parts: Any) -> str:
    """``import:KIND:...``: what tells a conversation already imported."""
    ref = ":".join(["import", kind, *(str(part) for part in parts)])
    if len(ref) > MAX_REF:
        import hashlib  # only for odd references: keep it off the path of `mschat ask`

        digest = hashlib.sha256(ref.encode("utf-8", "surrogatepass")).hexdigest()
        ref = f"import:{kind}:sha256:{digest}"
    return ref


def title_for(title: Any, messages: list[dict[str, Any]], fallback: str) -> str:
    """The conversation's own title, else keywords of its first question."""
    given = clean_title(text(title))
    if given:
        return given
    first = next((m["content"] for m in messages if m["role"] == "user"), "")
    return make_title(first) if first.strip() else fallback


def in_order(rows: list[dict[str, Any]], start: str | None) -> list[dict[str, Any]]:
    """Rows whose times never go back (a missing or earlier time takes the previous one).

    Sessions list messages by time: an imported conversation keeps its order.
    """
    last = start or next((row["created"] for row in rows if row.get("created")), None)
    for row in rows:
        created = row.get("created")
        if created is None or (last is not None and created < last):
            row["created"] = last
        last = row["created"] or last
    return rows
