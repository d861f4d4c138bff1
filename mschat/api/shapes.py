"""JSON shapes of users, sessions, messages and usage (documented in openapi.py)."""

from __future__ import annotations

from typing import Any

from mschat.core.models import Message, Session, Usage, User


def user_json(user: User) -> dict[str, Any]:
    """A user's public settings (operations fields such as admin stay out)."""
    return {
        "id": user.id,
        "user": user.external_id,
        "name": user.name,
        "kind": user.kind,
        "status": user.status,
        "model": user.model,
        "current_session_id": user.current_session_id,
        "system_msg": user.system_msg,
        "show_public": bool(user.show_public),
        "attach": bool(user.attach),
        "max_tokens": user.max_tokens,
        "temperature": user.temperature,
        "created": user.created,
        "updated": user.updated,
        "modified": user.modified,
    }


def session_json(session: Session) -> dict[str, Any]:
    """A session's settings and counts (its messages are listed separately)."""
    return {
        "id": session.id,
        "title": session.title,
        "model": session.model,
        "system_msg": session.system_msg,
        "public": bool(session.public),
        "origin": session.origin,
        "creator_id": session.creator_id,
        "creator": session.creator_name,
        "message_count": session.message_count,
        "forked_from_id": session.forked_from_id,
        "created": session.created,
        "updated": session.updated,
        "modified": session.modified,
    }


def message_json(message: Message) -> dict[str, Any]:
    """One stored turn."""
    return {
        "id": message.id,
        "session_id": message.session_id,
        "role": message.role,
        "content": message.content,
        "author_id": message.author_id,
        "author": message.author_name,
        "status": message.status,
        "model": message.model,
        "created": message.created,
        "tokens_in": message.tokens_in,
        "tokens_out": message.tokens_out,
        "latency_ms": message.latency_ms,
        "finish_reason": message.finish_reason,
        "error": message.error,
    }


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    """Token usage as OpenAI reports it (None when the provider said nothing)."""
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
