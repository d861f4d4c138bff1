"""Sessions as documents: Markdown rendering and JSON export/import rows."""

from __future__ import annotations

from typing import Any

from mschat.core.errors import InvalidInput
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
        if message.error:
            lines += ["", f"> error: {message.error}"]
    return "\n".join(lines) + "\n"


#: message fields an import keeps as they were exported
_KEPT = ("model", "created", "tokens_in", "tokens_out", "latency_ms", "finish_reason", "error")


def parse_export(data: Any, *, author_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate a JSON export; return its session fields and message rows to insert.

    User turns are credited to ``author_id`` (the original authors may not exist
    in this database); a reply exported while streaming becomes interrupted.
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
                **{key: message.get(key) for key in _KEPT},
                "role": message["role"],
                "content": message["content"],
                "status": status,
                "author_id": author_id if message["role"] == "user" else None,
            }
        )
    return session, rows
