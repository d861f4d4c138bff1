"""simonw/llm's ``logs.db``: every conversation it logged becomes a session.

llm logged to ``conversations`` and ``responses`` up to version 0.2x: one row per
model call with the prompt, the system prompt, the response, the model, token
counts and the time. Later versions log message chains instead (``threads`` →
tip of a chain of ``messages`` with ``parts``; one ``turns`` row per model call).
Both are read; a conversation present in both is read from its thread, which
holds the whole chain. The database is opened read-only and read one
conversation at a time, so a large log needs little memory.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mschat.core.errors import InvalidInput
from mschat.core.importers.base import (
    ImportedSession,
    Sessions,
    count,
    iso_time,
    not_importable,
    optional_text,
    reference,
    text,
    title_for,
)

TITLE = "llm conversation"


def read(name: str, path: Path) -> Sessions:
    """Every conversation of an llm ``logs.db`` (a SQLite file)."""
    try:
        conn = sqlite3.connect(
            f"file:{quote(str(path.absolute()))}?mode=ro", uri=True, check_same_thread=False
        )
    except sqlite3.Error:
        raise not_importable(name) from None
    # llm stores what models sent; invalid UTF-8 must not stop the import
    conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
    try:
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError:
            raise not_importable(name) from None
        legacy = {"conversations", "responses"} <= tables
        chains = {"threads", "turns", "messages", "parts"} <= tables
        if not (legacy or chains):
            raise not_importable(name)
        try:
            if legacy:
                yield from _legacy(conn, tables, threads=chains)
            if chains:
                yield from _threads(conn, tables)
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{name}: cannot read this llm database ({exc})") from None
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection, table: str, wanted: tuple[str, ...]) -> str:
    """``wanted`` as a select list; columns an older llm did not have read as NULL."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    return ", ".join(column if column in present else f"NULL AS {column}" for column in wanted)


# ---- conversations and responses (llm up to 0.2x) ----------------------------

_RESPONSE = (
    "id",
    "conversation_id",
    "model",
    "resolved_model",
    "prompt",
    "system",
    "response",
    "input_tokens",
    "output_tokens",
    "duration_ms",
    "datetime_utc",
)


def _legacy(conn: sqlite3.Connection, tables: set[str], *, threads: bool) -> Sessions:
    cursor = conn.execute(
        f"SELECT {_columns(conn, 'responses', _RESPONSE)} FROM responses "
        "ORDER BY conversation_id, rowid"
    )
    names = [d[0] for d in cursor.description]
    responses = (dict(zip(names, row, strict=True)) for row in cursor)
    extras = _Extras(
        fragments={"prompt_fragments", "system_fragments", "fragments"} <= tables,
        attachments="prompt_attachments" in tables,
    )
    # a response without a conversation is a conversation of its own
    for key, group in itertools.groupby(responses, lambda r: r["conversation_id"] or r["id"]):
        if (
            threads
            and conn.execute(
                "SELECT 1 FROM threads WHERE id = ? AND tip_message_hash IS NOT NULL", [key]
            ).fetchone()
        ):
            continue
        session = _legacy_conversation(conn, key, group, extras)
        if session is not None:
            yield session


@dataclass(frozen=True)
class _Extras:
    """Tables of later llm versions that add to a prompt: fragments, attachments."""

    fragments: bool
    attachments: bool


def _legacy_conversation(
    conn: sqlite3.Connection, key: Any, responses: Iterator[dict[str, Any]], extras: _Extras
) -> ImportedSession | None:
    rows: list[dict[str, Any]] = []
    system_msg: str | None = None
    system_now: str | None = None
    last_id = None
    for response in responses:
        last_id = response["id"]
        prompt = _with_fragments(conn, "prompt", response, extras.fragments, "\n")
        system = _with_fragments(conn, "system", response, extras.fragments, "\n\n")
        if extras.attachments:
            (attached,) = conn.execute(
                "SELECT count(*) FROM prompt_attachments WHERE response_id = ?", [last_id]
            ).fetchone()
            prompt = "\n".join([prompt, *["[attachment]"] * attached]).strip("\n")
        created = iso_time(response["datetime_utc"])
        if system and not rows:
            system_msg = system
        elif system and system != system_now:
            rows.append({"role": "system", "content": system, "created": created})
        system_now = system or system_now
        rows.append({"role": "user", "content": prompt, "created": created})
        if not text(response["response"]):
            continue  # no answer was logged: the question stays
        rows.append(
            {
                "role": "assistant",
                "content": text(response["response"]),
                "created": created,
                "model": optional_text(response["resolved_model"])
                or optional_text(response["model"]),
                "tokens_in": count(response["input_tokens"]),
                "tokens_out": count(response["output_tokens"]),
                "latency_ms": count(response["duration_ms"]),
            }
        )
    if not rows:
        return None
    found = conn.execute("SELECT name FROM conversations WHERE id = ?", [key]).fetchone()
    return ImportedSession(
        ref=reference("llm", key, last_id),
        title=title_for(found[0] if found else None, rows, TITLE),
        messages=rows,
        system_msg=system_msg,
        created=rows[0]["created"],
        updated=rows[-1]["created"],
    )


def _with_fragments(
    conn: sqlite3.Connection, kind: str, response: dict[str, Any], fragments: bool, glue: str
) -> str:
    """The prompt (or system prompt) as the model saw it: its fragments, then the text."""
    pieces = []
    if fragments:
        pieces = [
            text(row[0])
            for row in conn.execute(
                f"SELECT f.content FROM {kind}_fragments pf "
                "JOIN fragments f ON f.id = pf.fragment_id "
                'WHERE pf.response_id = ? ORDER BY pf."order"',
                [response["id"]],
            )
        ]
    own = text(response[kind])
    return glue.join(piece for piece in [*pieces, own] if piece.strip())


# ---- threads, turns and message chains (later llm) ---------------------------

_TURN = (
    "parent_message_hash",
    "tip_message_hash",
    "model",
    "resolved_model",
    "input_tokens",
    "output_tokens",
    "duration_ms",
    "datetime_utc",
)


def _threads(conn: sqlite3.Connection, tables: set[str]) -> Sessions:
    threads = conn.execute(
        "SELECT id, name, tip_message_hash FROM threads "
        "WHERE tip_message_hash IS NOT NULL ORDER BY rowid"
    )
    turn_columns = _columns(conn, "turns", _TURN)
    for thread_id, name, tip in threads:
        session = _thread(conn, thread_id, name, tip, turn_columns, "fragments" in tables)
        if session is not None:
            yield session


def _thread(
    conn: sqlite3.Connection,
    thread_id: Any,
    name: Any,
    tip: Any,
    turn_columns: str,
    fragments: bool,
) -> ImportedSession | None:
    cursor = conn.execute(
        f"SELECT {turn_columns} FROM turns WHERE thread_id = ? ORDER BY rowid",
        [thread_id],
    )
    names = [d[0] for d in cursor.description]
    by_tip: dict[Any, dict[str, Any]] = {}
    by_question: dict[Any, dict[str, Any]] = {}
    for values in cursor:
        turn = dict(zip(names, values, strict=True))
        by_tip.setdefault(turn["tip_message_hash"], turn)
        by_question.setdefault(turn["parent_message_hash"], turn)
    rows: list[dict[str, Any]] = []
    system_msg: str | None = None
    system_now: str | None = None
    for message_hash, role in _chain(conn, tip):
        content = _message_text(conn, message_hash, fragments)
        if role == "system":
            if content and not rows and system_msg is None:
                system_msg = content
            elif content and content != (system_now or system_msg):
                rows.append({"role": "system", "content": content, "created": None})
            system_now = content or system_now
            continue
        if role not in ("user", "assistant") or not content.strip():
            continue  # tool results, and calls to tools without text
        if role == "user":
            asked = by_question.get(message_hash) or {}
            rows.append(
                {"role": "user", "content": content, "created": iso_time(asked.get("datetime_utc"))}
            )
            continue
        turn = by_tip.get(message_hash) or {}
        row = {
            "role": "assistant",
            "content": content,
            "created": iso_time(turn.get("datetime_utc")),
            "model": optional_text(turn.get("resolved_model")) or optional_text(turn.get("model")),
            "tokens_in": count(turn.get("input_tokens")),
            "tokens_out": count(turn.get("output_tokens")),
            "latency_ms": count(turn.get("duration_ms")),
        }
        if rows and rows[-1]["role"] == "assistant":
            _merge(rows[-1], row)  # an answer given across tool calls reads as one
        else:
            rows.append(row)
    if not rows:
        return None
    return ImportedSession(
        ref=reference("llm", thread_id, tip),
        title=title_for(name, rows, TITLE),
        messages=rows,
        system_msg=system_msg,
        created=next((row["created"] for row in rows if row["created"]), None),
        updated=next((row["created"] for row in reversed(rows) if row["created"]), None),
    )


def _chain(conn: sqlite3.Connection, tip: Any) -> list[tuple[Any, str]]:
    """(hash, role) of each message from the root to ``tip`` (a cycle ends the walk)."""
    chain = []
    seen = set()
    current = tip
    while current is not None and current not in seen:
        found = conn.execute(
            "SELECT parent_hash, role FROM messages WHERE hash = ?", [current]
        ).fetchone()
        if found is None:
            break
        seen.add(current)
        chain.append((current, found[1]))
        current = found[0]
    chain.reverse()
    return chain


def _message_text(conn: sqlite3.Connection, message_hash: Any, fragments: bool) -> str:
    """A message's text parts joined; attachments marked, reasoning and tool parts left out."""
    pieces = []
    for kind, literal, payload in conn.execute(
        "SELECT type, text, payload FROM parts WHERE message_hash = ? ORDER BY position",
        [message_hash],
    ):
        if kind == "text":
            pieces.append(
                text(literal) if literal is not None else _text_ref(conn, payload, fragments)
            )
        elif kind == "attachment":
            pieces.append("[attachment]")
    return "\n".join(piece for piece in pieces if piece)


def _text_ref(conn: sqlite3.Connection, payload: Any, fragments: bool) -> str:
    """Text stored as literals and references to fragments (shared long text)."""
    try:
        data = json.loads(payload) if isinstance(payload, str) else None
    except json.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("text"), str):
        return text(data["text"])
    pieces = []
    for piece in data.get("text_ref") or []:
        if not isinstance(piece, dict):
            continue
        if isinstance(piece.get("literal"), str):
            pieces.append(text(piece["literal"]))
        elif fragments and isinstance(piece.get("fragment"), int):
            found = conn.execute(
                "SELECT content FROM fragments WHERE id = ?", [piece["fragment"]]
            ).fetchone()
            pieces.append(text(found[0]) if found else "")
    return "".join(pieces)


def _merge(into: dict[str, Any], row: dict[str, Any]) -> None:
    """Add a later part of the same answer: text appended, counts summed."""
    into["content"] += "\n\n" + row["content"]
    into["model"] = into["model"] or row["model"]
    for key in ("tokens_in", "tokens_out", "latency_ms"):
        if row[key] is not None:
            into[key] = (into[key] or 0) + row[key]
