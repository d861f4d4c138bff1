"""Records as the core's dataclasses: the columns each backend selects, and their conversion."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from mschat.core.models import AttachmentInfo, Message, Session, User

USER_COLUMNS = [f.name for f in fields(User)]
SESSION_COLUMNS = [f.name for f in fields(Session) if f.name != "creator_name"]
MESSAGE_COLUMNS = [f.name for f in fields(Message) if f.name != "author_name"]
USER_BOOLEANS = ("show_public", "attach", "ignored", "admin")
SESSION_BOOLEANS = ("public", "hidden")


def user(row: Sequence[Any], names: Sequence[str]) -> User:
    """A users row (flags as booleans whatever the backend stores)."""
    data = dict(zip(names, row, strict=True))
    for key in USER_BOOLEANS:
        data[key] = bool(data[key])
    return User(**data)


def session(row: Sequence[Any], names: Sequence[str]) -> Session:
    """A sessions row joined with its creator's name."""
    data = dict(zip(names, row, strict=True))
    for key in SESSION_BOOLEANS:
        data[key] = bool(data[key])
    return Session(**data)


def message(row: Sequence[Any], names: Sequence[str]) -> Message:
    """A messages row joined with its author's name."""
    data = dict(zip(names, row, strict=True))
    data["attachments"] = attachments_of(data.get("attachments"))
    return Message(**data)


def attachments_of(value: Any) -> tuple[AttachmentInfo, ...]:
    """A message's files from what was stored or given: JSON text, dicts or infos."""
    if not value:
        return ()
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(
        item if isinstance(item, AttachmentInfo) else AttachmentInfo(**item) for item in value
    )


def attachments_json(value: Any) -> str | None:
    """A message's files as stored in ``messages.attachments`` (None when it has none)."""
    infos = attachments_of(value)
    if not infos:
        return None
    return json.dumps(
        [{"sha256": a.sha256, "name": a.name, "mime": a.mime, "size": a.size} for a in infos],
        ensure_ascii=False,
    )


def interaction(values: dict[str, Any]) -> dict[str, Any]:
    """An interaction's values with its payload as JSON text."""
    if isinstance(values.get("payload"), dict | list):
        return {**values, "payload": json.dumps(values["payload"], ensure_ascii=False)}
    return values


def message_values(values: dict[str, Any]) -> dict[str, Any]:
    """A message's values as inserted: its files as JSON text."""
    if "attachments" not in values:
        return values
    return {**values, "attachments": attachments_json(values["attachments"])}


def copied_value(row: dict[str, Any], column: str, now: str) -> Any:
    """A column of a message copied by a fork or an import (files as JSON, a time)."""
    if column == "attachments":
        return attachments_json(row.get(column))
    if column == "created":
        return row.get(column) or now
    return row.get(column)
