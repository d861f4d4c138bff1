"""What the bot writes: user and session panels, hints and errors (pure, no I/O)."""

from __future__ import annotations

from mschat.core.errors import (
    ChatDisabled,
    DatabaseUnavailable,
    MschatError,
    PermissionDenied,
    ProviderError,
)
from mschat.core.models import Message, MessageStatus, Session, Status, User
from mschat.discord.split import DISCORD_LIMIT, close_open_fence

#: characters of one turn shown in a session panel before it is cut
TURN_CHARS = 400
STATUS_HELP = {
    Status.NEW: "every message starts a new session",
    Status.ACTIVE: "messages continue the current session",
    Status.DISABLED: "the bot ignores your messages",
}
DISABLED_HINT = (
    "I'm not answering because your mschat status is **disabled**. "
    "Run `/user` and choose the status **new** (a new session per question) "
    "or **active** (continue your current session) to chat."
)
#: characters and lines of a slash command's question quoted above its answer
QUESTION_CHARS = 300
QUESTION_LINES = 5
#: a question while the database is down (which server it is goes to the bot's log)
UNAVAILABLE = "❌ My database is unreachable right now; try again shortly."


def when(iso: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM UTC``."""
    if not iso:
        return "never"
    return iso[:16].replace("T", " ") + " UTC"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def on_off(flag: bool) -> str:
    """A flag as on/off."""
    return "on" if flag else "off"


def session_label(session: Session) -> str:
    """A session in one short line: id, title, visibility."""
    visibility = "public" if session.public else "private"
    return f"#{session.id} {clip(session.title, 60)} ({visibility})"


def user_text(
    user: User,
    current: Session | None,
    sessions: list[Session],
    *,
    total: int,
    page: int,
    pages: int,
    model: str | None,
    cost: str | None = None,
) -> str:
    """The /user panel (``cost``: what the user's answers cost, one line)."""
    lines = [
        f"**{clip(user.name, 80)}** (Discord id `{user.external_id}`)",
        f"Status: **{user.status}** — {STATUS_HELP.get(Status(user.status), '')}",
        f"Model: `{model or 'default'}` · max_tokens {user.max_tokens} · "
        f"temperature {user.temperature:g}",
        f"Show public: {on_off(user.show_public)} · Attach: {on_off(user.attach)}",
        f"Created {when(user.created)} · Updated {when(user.updated)} · "
        f"Modified {when(user.modified)}",
        f"System message: {clip(user.system_msg, 300) if user.system_msg else '(none)'}",
        f"Current session: {session_label(current) if current else '(none)'}",
    ]
    if cost:
        lines.append(f"Cost: {cost}")
    scope = "yours and public ones" if user.show_public else "yours"
    if total:
        lines.append(
            f"Sessions ({scope}): {total}" + (f" · page {page + 1}/{pages}" if pages > 1 else "")
        )
        for session in sessions[:10]:
            by = (
                f" by {clip(session.creator_name or '?', 30)}"
                if session.creator_id != user.id
                else ""
            )
            lines.append(f"• {session_label(session)}{by} — {session.message_count} messages")
        if len(sessions) > 10:
            lines.append(f"• … {len(sessions) - 10} more on this page in the session menu")
    else:
        lines.append(f"Sessions ({scope}): none yet")
    return clip("\n".join(lines), DISCORD_LIMIT)


def turn_text(message: Message, limit: int = TURN_CHARS) -> str:
    """One stored turn, cut to ``limit`` characters with code fences kept balanced."""
    who = message.author_name or message.role
    status = "" if message.status == MessageStatus.COMPLETE else f" ({message.status})"
    body = close_open_fence(clip(message.content, limit)) if message.content else "(empty)"
    return f"**{clip(who, 40)}**{status}:\n{body}"


def session_text(session: Session, messages: list[Message], *, total: int) -> tuple[str, bool]:
    """The session panel and whether anything was left out (then attach the transcript)."""
    head = [
        f"**Session #{session.id}: {clip(session.title, 100)}**",
        f"Creator: {clip(session.creator_name or '?', 80)} · Model: `{session.model}` · "
        f"Visibility: **{'public' if session.public else 'private'}**",
        f"Created {when(session.created)} · Updated {when(session.updated)} · "
        f"Modified {when(session.modified)}",
        f"System message: {clip(session.system_msg, 300) if session.system_msg else '(none)'}",
    ]
    text = "\n".join(head)
    budget = DISCORD_LIMIT - len(text) - 80
    shown: list[str] = []
    complete = True
    for message in reversed(messages):
        turn = turn_text(message)
        if len(turn) + 2 > budget:
            complete = False
            break
        budget -= len(turn) + 2
        shown.insert(0, turn)
        if len(message.content) > TURN_CHARS:
            complete = False
    if len(shown) < total:
        complete = False
    if total == 0:
        text += "\n\n(no messages yet)"
    else:
        text += f"\n\n__Last {len(shown)} of {total} turns__"
        if shown:
            text += "\n" + "\n\n".join(shown)
    if not complete:
        text += "\n\n(the full transcript is attached)"
    return clip(text, DISCORD_LIMIT), not complete


def error_text(error: BaseException) -> str:
    """A short, user-facing error line (secrets never reach it: core errors are clean)."""
    if isinstance(error, PermissionDenied):
        return f"🚫 {clip(str(error), 300)}"
    if isinstance(error, ProviderError):
        return f"❌ The model failed: {clip(str(error), 300)}"
    if isinstance(error, DatabaseUnavailable):
        return UNAVAILABLE
    if isinstance(error, MschatError):
        return f"⚠️ {clip(str(error), 300)}"
    return "⚠️ Something went wrong on my side; the error is in the bot's log."


def refusal_text(error: BaseException) -> str:
    """Why a question got no answer: for a disabled user, how to opt in; else the error."""
    if isinstance(error, ChatDisabled):
        return DISABLED_HINT
    return error_text(error)


def question_head(prompt: str) -> str:
    """The question quoted above a ``/chat`` answer: the channel sees what was asked."""
    lines = clip(prompt, QUESTION_CHARS).splitlines()[:QUESTION_LINES] or [""]
    return "\n".join(f"> {line}" for line in lines) + "\n\n"
