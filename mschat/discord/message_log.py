"""The interactions log of plain messages: every one that mentions the bot, and every
one answered.

A message that @mentions the bot (or its role) gets a row of kind ``mention``
whatever becomes of it: answered (``ok``), ``refused`` (the error column says
why: ``user_ignored``, ``user_disabled``, ``rate_limited``, ``queue_full``…,
``empty``) or failed (``error``), with a bounded excerpt of its text, except an
ignored user's (nothing they send is stored). Any other plain message gets a row
of kind ``message`` once it was answered, with its length only (its text is in
its session).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from mschat.core.errors import Busy, DatabaseError, MschatError, PermissionDenied
from mschat.core.models import User, utcnow

if TYPE_CHECKING:
    import discord

#: the most characters of a mention's text the log keeps
EXCERPT = 200
#: why a bare mention (nothing but the bot's name) is not answered
EMPTY = "empty: nothing to answer besides the mention"


def outcome(error: Exception) -> str:
    """How an answer that ended in ``error`` is logged: refused by a rule, or failed."""
    return "refused" if isinstance(error, (PermissionDenied, Busy)) else "error"


def reason(error: Exception) -> str:
    """The error column: the core's code first, so refusals can be told apart."""
    return f"{error.code}: {error}" if isinstance(error, MschatError) else str(error)


def excerpt(text: str) -> str:
    """At most :data:`EXCERPT` characters of ``text``."""
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


class MessageLog:
    """The one row a plain message gets in the interactions log (if any)."""

    def __init__(self, manager: Any, message: discord.Message, text: str, *, mention: bool):
        self.manager = manager
        self.message = message
        self.text = text  # without the bot's mention
        self.mention = mention
        self.received = utcnow()

    async def refused(self, user: User, why: MschatError | str) -> None:
        """The message is not answered (a rule, or nothing to answer): logged if a mention."""
        if self.mention:
            await self._write(user, "refused", why if isinstance(why, str) else reason(why))

    async def answered(self, user: User, error: Exception | None) -> None:
        """The answer is over: complete (``error`` None), refused or failed."""
        if error is None:
            await self._write(user, "ok")
        else:
            await self._write(user, outcome(error), reason(error))

    async def interrupted(self, user: User) -> None:
        """The bot shut down mid-answer."""
        await self._write(user, "interrupted")

    async def _write(self, user: User, status: str, error: str | None = None) -> None:
        payload: dict[str, Any] = {"message_id": str(self.message.id), "length": len(self.text)}
        if self.mention and not user.ignored:
            payload["excerpt"] = excerpt(self.text)
        guild = self.message.guild
        # one row once the message's fate is known (one write per question, not two);
        # a database gone meanwhile has already been reported
        with contextlib.suppress(DatabaseError):
            await self.manager.log_interaction(
                user_id=user.id,
                source="discord",
                kind="mention" if self.mention else "message",
                name="qa",
                guild_id=str(guild.id) if guild is not None else None,
                channel_id=str(self.message.channel.id),
                payload=payload,
                status=status,
                error=error,
                created=self.received,
            )
