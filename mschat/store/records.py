"""Records as the core's dataclasses: the columns each backend selects, and their conversion."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from mschat.core.models import Message, Session, User

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
    return Message(**dict(zip(names, row, strict=True)))


def interaction(values: dict[str, Any]) -> dict[str, Any]:
    """An interaction's values with its payload as JSON text."""
    if isinstance(values.get("payload"), dict | list):
        return {**values, "payload": json.dumps(values["payload"], ensure_ascii=False)}
    return values
