"""Small pure helpers that turn core objects into display text (no Textual here).

Outside text (titles, names, message bodies, error texts, model names) is shown
through :func:`mschat.visible.visible`, so no control character from data
reaches the terminal, and as a rich ``Text``, never as a markup string.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from rich.text import Text

from mschat.core.models import Message, MessageStatus, Session
from mschat.visible import visible

_FENCE = re.compile(r"^(```|~~~)([^\n`]*)\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def short_time(iso: str, now: datetime | None = None) -> str:
    """A compact local-independent time: HH:MM today, else YYYY-MM-DD HH:MM."""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return one_line(iso[:16])  # an imported file may hold anything here
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if when.date() == now.date():
        return when.strftime("%H:%M")
    return when.strftime("%Y-%m-%d %H:%M")


def one_line(text: str) -> str:
    """A name, title or model as one line of visible characters."""
    return visible(text, newlines=False)


def plain(text: str, style: str = "", *, newlines: bool = True) -> Text:
    """Outside text for a widget: control characters visible, never parsed as markup."""
    return Text(visible(text, newlines=newlines), style=style)


def title_of(session: Session) -> str:
    """A session's title, safe for one line."""
    return one_line(session.title or "(untitled)")


def author_of(message: Message) -> str:
    """Who said a message: the author's name, or the model for replies."""
    if message.role == "assistant":
        return f"assistant ({one_line(message.model)})" if message.model else "assistant"
    return one_line(message.author_name or message.role)


def status_note(message: Message) -> str:
    """A short suffix for messages that did not complete."""
    if message.status == MessageStatus.COMPLETE:
        return ""
    return f" [{one_line(message.status)}]"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced code blocks of a Markdown text as (language, code) pairs."""
    return [(m.group(2).strip(), m.group(3)) for m in _FENCE.finditer(text)]


def session_mark(session: Session) -> str:
    """A globe for public sessions, a lock for private ones."""
    return "🌐" if session.public else "🔒"
