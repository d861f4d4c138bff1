"""One compact line per tool call of an answer, in Discord's subtext markdown.

Tool names come from MCP servers and the model, notices quote them: hostile
text. A line never spans lines, never renders markup, links or mentions
(the bot's ``allowed_mentions`` already keeps them from pinging).
"""

from __future__ import annotations

import re

import discord

from mschat.core.events import ToolCallFinished

#: the longest tool name or notice a line shows
NAME_CHARS = 80
NOTICE_CHARS = 160

_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\s]+")


def tool_line(event: ToolCallFinished) -> str:
    """``-# 🔧 server/tool · ok · 12 ms``; a denied call says why in a few words."""
    name = f"{event.server}/{event.tool}"
    if event.status == "denied":
        why = _short_notice(event.notice, name) if event.notice else "not run"
        return f"-# 🔧 {_safe(name, NAME_CHARS)} · {_safe(why, NOTICE_CHARS)}"
    return f"-# 🔧 {_safe(name, NAME_CHARS)} · {_safe(event.status, 20)} · {event.duration_ms} ms"


def _short_notice(notice: str, name: str) -> str:
    """The notice without the tool's name it starts with, up to its first ``;``
    (the line names the tool already, and a denied call is never run)."""
    prefix = f"tool {name} "
    if notice.startswith(prefix):
        notice = notice[len(prefix) :].removeprefix("is ")
    return notice.split(";", 1)[0].strip() or notice


def _safe(text: str, limit: int) -> str:
    """``text`` on one line, clipped, shown literally: no markdown, mention or link."""
    text = _BREAKS.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = discord.utils.escape_markdown(discord.utils.escape_mentions(text), ignore_links=False)
    # a zero-width space keeps Discord from turning a scheme into a link (and an embed)
    return text.replace("://", "\u200b://").replace("<", "<\u200b")
