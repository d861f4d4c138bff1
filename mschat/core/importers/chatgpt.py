"""ChatGPT's data export: ``conversations.json`` (also inside the export's zip).

The file is a JSON array of conversations. Each holds its messages as a tree
(``mapping``: node id → ``{message, parent, children}``) because editing a
question or regenerating an answer starts a branch; ``current_node`` is the last
node of the branch the user saw. That branch is imported, from its root down.
Only what the ChatGPT page showed becomes a turn: user and assistant text.
System prompts, hidden context, tool calls and their output, and the model's
thoughts are left out; images and audio become a ``[image]``/``[audio]`` mark.
"""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any

from mschat.core.errors import InvalidInput
from mschat.core.importers.base import (
    ImportedSession,
    Sessions,
    iso_time,
    not_importable,
    optional_text,
    reference,
    text,
    title_for,
)
from mschat.core.importers.jsonstream import JSONStreamError, iter_array
from mschat.core.models import MessageStatus


def read(name: str, stream: IO[bytes]) -> Sessions:
    """Every conversation of a ``conversations.json`` stream (it starts with ``[``)."""
    items = iter_array(stream)
    index = 0
    while True:
        try:
            item = next(items, None)
        except JSONStreamError as error:
            if error.index == 0:
                raise not_importable(name) from None
            raise InvalidInput(f"{name}: conversation {error.index + 1}: {error}") from None
        if item is None:
            return
        if not isinstance(item, dict) or not isinstance(item.get("mapping"), dict):
            if index == 0:
                raise not_importable(name)
            raise InvalidInput(f"{name}: conversation {index + 1} has no message tree (mapping)")
        index += 1
        session = conversation(item)
        if session is not None:
            yield session


def conversation(item: dict[str, Any]) -> ImportedSession | None:
    """The shown branch of one conversation, or None when it has no text turn."""
    mapping: dict[str, Any] = item["mapping"]
    leaf = item.get("current_node")
    if not isinstance(leaf, str) or leaf not in mapping:
        leaf = _last_leaf(mapping)
    rows: list[dict[str, Any]] = []
    default_model = optional_text(item.get("default_model_slug"))
    for node in _branch(mapping, leaf):
        row = _row(node.get("message"), default_model)
        if row is None:
            continue
        if rows and row["role"] == "assistant" == rows[-1]["role"]:
            # one answer split around a tool call reads as one answer
            rows[-1]["content"] += "\n\n" + row["content"]
            rows[-1]["status"] = row["status"]
            rows[-1]["finish_reason"] = row["finish_reason"]
            continue
        rows.append(row)
    if not rows:
        return None
    conversation_id = item.get("conversation_id") or item.get("id")
    if isinstance(conversation_id, str) and conversation_id:
        ref = reference("chatgpt", conversation_id, leaf)
    else:
        canonical = json.dumps(item, sort_keys=True).encode()
        ref = reference("chatgpt", "sha256", hashlib.sha256(canonical).hexdigest())
    return ImportedSession(
        ref=ref,
        title=title_for(item.get("title"), rows, "ChatGPT conversation"),
        messages=rows,
        created=iso_time(item.get("create_time")),
        updated=iso_time(item.get("update_time")),
    )


def _branch(mapping: dict[str, Any], leaf: Any) -> list[dict[str, Any]]:
    """The nodes from the root down to ``leaf`` (a cycle in a hostile file ends the walk)."""
    nodes = []
    seen = set()
    node_id = leaf
    while isinstance(node_id, str) and node_id not in seen:
        node = mapping.get(node_id)
        if not isinstance(node, dict):
            break
        seen.add(node_id)
        nodes.append(node)
        node_id = node.get("parent")
    nodes.reverse()
    return nodes


def _last_leaf(mapping: dict[str, Any]) -> str | None:
    """Without a valid ``current_node``: the newest node that has no children."""
    best: tuple[float, str] | None = None
    for node_id, node in mapping.items():
        if not isinstance(node, dict) or node.get("children"):
            continue
        message = node.get("message")
        created = message.get("create_time") if isinstance(message, dict) else None
        key = (created if isinstance(created, int | float) else float("-inf"), node_id)
        if best is None or key > best:
            best = key
    return best[1] if best else None


def _row(message: Any, default_model: str | None) -> dict[str, Any] | None:
    """A user or assistant turn the ChatGPT page showed, as a message row."""
    if not isinstance(message, dict):
        return None
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    metadata = message.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if role not in ("user", "assistant") or metadata.get("is_visually_hidden_from_conversation"):
        return None
    if role == "assistant" and message.get("recipient", "all") not in ("all", None):
        return None  # the model calling a tool (code, browsing, image generation)
    content = _content(message.get("content"))
    if not content.strip():
        return None
    finish = metadata.get("finish_details")
    finish_reason = optional_text(finish.get("type")) if isinstance(finish, dict) else None
    interrupted = finish_reason == "interrupted" or message.get("status") == "in_progress"
    assistant = role == "assistant"
    return {
        "role": role,
        "content": content,
        "created": iso_time(message.get("create_time")),
        "model": (optional_text(metadata.get("model_slug")) or default_model)
        if assistant
        else None,
        "status": MessageStatus.INTERRUPTED.value if interrupted else MessageStatus.COMPLETE.value,
        "finish_reason": finish_reason if assistant else None,
    }


def _content(content: Any) -> str:
    """The shown text of a message's content ("" for what the page did not show)."""
    if not isinstance(content, dict):
        return ""
    kind = content.get("content_type")
    if kind == "code" and isinstance(content.get("text"), str):
        return f"```\n{text(content['text'])}\n```"
    if kind not in ("text", "multimodal_text") or not isinstance(content.get("parts"), list):
        return ""  # thoughts, hidden context, tool output, browsing results
    pieces = []
    for part in content["parts"]:
        if isinstance(part, str):
            if part:
                pieces.append(text(part))
        elif isinstance(part, dict):
            pieces.append(_part(part))
    return "\n\n".join(piece for piece in pieces if piece)


def _part(part: dict[str, Any]) -> str:
    """A non-text part: its transcript if it has one, else a mark of what it was."""
    if isinstance(part.get("text"), str) and part["text"]:
        return text(part["text"])  # e.g. an audio transcription
    kind = part.get("content_type")
    kind = kind if isinstance(kind, str) else ""
    for media in ("image", "audio", "video"):
        if media in kind:
            return f"[{media}]"
    return "[attachment]"
