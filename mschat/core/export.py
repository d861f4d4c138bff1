"""Sessions as documents: Markdown rendering and JSON export/import rows."""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from mschat.core.attachments import Limits, Prepared, prepare, size_text
from mschat.core.errors import InvalidInput
from mschat.core.importers.base import count, iso_time, optional_text, text
from mschat.core.models import Message, MessageStatus, Session


def render_markdown(session: Session, messages: list[Message]) -> str:
    """A session as a Markdown document."""
    lines = [f"# {session.title}", ""]
    lines.append(
        f"- session: {session.id}\n- creator: {session.creator_name}\n- model: {session.model}\n"
        f"- visibility: {'public' if session.public else 'private'}\n"
        f"- created: {session.created}\n- updated: {session.updated}"
    )
    if session.system_msg:
        lines += ["", "## System", "", session.system_msg]
    for message in messages:
        who = message.author_name or ("assistant" if message.role == "assistant" else message.role)
        status = "" if message.status == MessageStatus.COMPLETE else f" ({message.status})"
        lines += ["", f"## {who} · {message.created[:19].replace('T', ' ')}{status}", ""]
        lines.append(message.content)
        for info in message.attachments:
            lines.append(f"\n📎 {info.name} ({info.mime}, {size_text(info.size)})")
        if message.error:
            lines += ["", f"> error: {message.error}"]
    return "\n".join(lines) + "\n"


def export_json(session: Session, messages: list[Message], files: Mapping[str, bytes]) -> dict:
    """A session as the JSON document ``sessions export -f json`` writes: every field,
    each file with its content in base64."""
    rows = []
    for message in messages:
        row = asdict(message)
        row["attachments"] = [
            {**asdict(info), "data": base64.b64encode(files.get(info.sha256, b"")).decode()}
            for info in message.attachments
        ]
        rows.append(row)
    return {"session": asdict(session), "messages": rows}


#: an import re-checks every file's type, not its size (the file is the user's own)
_IMPORTED = Limits(max_bytes=sys.maxsize, max_count=sys.maxsize)


def _files(index: int, given: Any) -> list[Prepared]:
    """The files of exported message ``index``: re-checked and re-hashed, whatever the
    document claims (a hash given is never trusted: contents are shared by hash)."""
    if given is None:
        return []
    if not isinstance(given, list):
        raise InvalidInput(f"message {index} of the export has attachments that are not a list")
    files = []
    for item in given:
        try:
            data = base64.b64decode(item["data"], validate=True)
            name = str(item["name"])
        except (TypeError, KeyError, ValueError, binascii.Error):
            raise InvalidInput(
                f"message {index} of the export has an attachment without a name and base64 data"
            ) from None
        files.append(prepare(name, data, _IMPORTED))
    return files


def parse_export(
    data: Any, *, author_id: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate a JSON export; return its session fields and message rows to insert
    (their files under ``files``: see ``attachments.save_files``).

    User turns are credited to ``author_id`` (the original authors may not exist
    in this database); a reply exported while streaming becomes interrupted.
    Values of the wrong type are dropped rather than stored: the file is outside
    input, and a number where text belongs must not reach the database.
    """
    session = data.get("session") if isinstance(data, dict) else None
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(session, dict) or not isinstance(messages, list):
        raise InvalidInput('not an mschat export: expected {"session": {...}, "messages": [...]}')
    statuses = {status.value for status in MessageStatus}
    rows = []
    for index, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            raise InvalidInput(f"message {index} of the export has no valid role and content")
        status = message.get("status") or MessageStatus.COMPLETE.value
        if status == MessageStatus.STREAMING:
            status = MessageStatus.INTERRUPTED.value
        elif status not in statuses:
            status = MessageStatus.COMPLETE.value
        rows.append(
            {
                "role": message["role"],
                "content": text(message["content"]),
                "status": status,
                "author_id": author_id if message["role"] == "user" else None,
                "created": iso_time(message.get("created")),
                "model": optional_text(message.get("model")),
                "tokens_in": count(message.get("tokens_in")),
                "tokens_out": count(message.get("tokens_out")),
                "latency_ms": count(message.get("latency_ms")),
                "finish_reason": optional_text(message.get("finish_reason")),
                "error": optional_text(message.get("error")),
                "files": _files(index, message.get("attachments")),
            }
        )
    fields = {
        "title": text(session.get("title")),
        "model": optional_text(session.get("model")),
        "system_msg": optional_text(session.get("system_msg")),
        "created": iso_time(session.get("created")),
        "updated": iso_time(session.get("updated")),
    }
    return fields, rows
