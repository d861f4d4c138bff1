"""Answers a killed bot left streaming: finished in the same message, or marked interrupted.

While an answer streams, where it shows is stored with its reply (``place``):
the channel and first message of a Q&A answer, or the interaction's token of a
``/chat`` or ``/private`` answer, which Discord honours for 15 minutes. A bot
that starts (or another instance, once the dead writer's lease is over) claims
those replies in the database, each for one process, and

- answers a reply again from its stored context (``SessionManager.resume_reply``)
  into the same message, ending as any answer does (👌 on a Q&A question);
- says in the message that the answer was interrupted when it can no longer be
  finished (the token expired, or the session went on), the reply so marked.

The interaction token is a credential: it is stored only while the answer
streams, and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import discord

from mschat.core.errors import DatabaseError, MschatError
from mschat.core.events import Event, Started
from mschat.discord import qa
from mschat.discord.lanes import DONE, FAILED, WRITING, Lane, Marks
from mschat.discord.texts import question_head
from mschat.store.contract import ReplySurface

if TYPE_CHECKING:
    from mschat.discord.bot import MschatBot

log = logging.getLogger("mschat.discord")

#: how long a restarted bot still finishes a Q&A answer in its message
MESSAGE_RESUMABLE = timedelta(hours=1)
#: an interaction's token works 15 minutes; an answer again needs some of them
TOKEN_RESUMABLE = timedelta(minutes=13)
GAVE_UP = "\n\n*(interrupted: the bot restarted before this answer was finished; ask again)*"

#: (kind, usable until, where) as ``Store.save_reply_surface`` takes them
Place = tuple[str, str, dict[str, Any]]


def _stamp(moment: datetime) -> str:
    """The stored form of a time (as the core's leases)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def message_place(first: discord.Message) -> Place:
    """Where a Q&A answer shows: its first message in its channel."""
    until = _stamp(datetime.now(UTC) + MESSAGE_RESUMABLE)
    return "message", until, {"channel_id": str(first.channel.id), "message_id": str(first.id)}


def interaction_place(
    interaction: discord.Interaction, first: discord.Message, received: datetime
) -> Place:
    """Where a ``/chat`` or ``/private`` answer shows: the interaction's original response
    (its token usable until a while after the bot ``received`` it)."""
    until = _stamp(received + TOKEN_RESUMABLE)
    return (
        "interaction",
        until,
        {
            "application_id": str(interaction.application_id),
            "token": interaction.token,
            "channel_id": str(interaction.channel_id),
            "message_id": str(first.id),
        },
    )


async def remember(bot: MschatBot, reply_id: int, place: Place) -> None:
    """Store where the reply shows; a database gone meanwhile only loses the resumption."""
    kind, until, values = place
    with contextlib.suppress(DatabaseError):
        await bot.manager.save_reply_surface(reply_id, kind, until, **values)


async def forget(bot: MschatBot, reply_id: int) -> None:
    """The answer is over: where it showed (and any token) is kept no longer."""
    with contextlib.suppress(DatabaseError):
        await bot.manager.drop_reply_surface(reply_id)


class StoredSurface:
    """A surface found in the database: its first message is edited, not sent again."""

    def __init__(self, bot: MschatBot, surface: ReplySurface) -> None:
        self.bot = bot
        self.surface = surface
        self.first = True
        self.question_ref: str | None = None
        self.webhook: discord.Webhook | None = None
        channel = bot.get_partial_messageable(int(surface.channel_id or 0))
        self.channel = channel
        if surface.kind == "interaction":
            self.webhook = discord.Webhook.partial(
                int(surface.application_id or 0), surface.token or "", client=bot
            )
            self.lane = Lane()
        else:
            self.lane = bot.lanes.messages(channel.id)

    async def _edit(self, **fields: Any) -> discord.Message:
        message_id = int(self.surface.message_id or 0)
        if self.webhook is not None:
            return await self.webhook.edit_message(message_id, **fields)
        return await self.channel.get_partial_message(message_id).edit(**fields)

    async def text(self) -> str:
        """What the message shows now."""
        message_id = int(self.surface.message_id or 0)
        if self.webhook is not None:
            return (await self.webhook.fetch_message(message_id)).content
        return (await self.channel.fetch_message(message_id)).content

    async def send(self, part: str, view: discord.ui.View | None) -> discord.Message:
        """The first part edits the stored message; later parts follow it."""
        fields: dict[str, Any] = {} if view is None else {"view": view}
        if self.first:
            self.first = False
            return await self._edit(content=part, **fields)
        if self.webhook is not None:
            return await self.webhook.send(part, wait=True, **fields)
        return await self.channel.send(part, **fields)

    async def note(self, text: str, *, shown: bool) -> None:
        """An error line after the answer."""
        if self.webhook is not None:
            await self.webhook.send(text, wait=True)
        else:
            await self.channel.send(text)

    def place(self, first: discord.Message) -> Place:
        """The same place again (the answer again is a new reply)."""
        s = self.surface
        values = {
            "channel_id": s.channel_id,
            "message_id": s.message_id,
            "application_id": s.application_id,
            "token": s.token,
        }
        return s.kind, s.usable_until, values

    def waiting(self, on: bool) -> None:
        """Nothing shows the wait: the message keeps the text it had."""

    def in_line(self, text: str) -> None:
        """Nor the place in line: the half answer stays until the new one replaces it."""

    def finished(self, ok: bool) -> None:
        """👌 (or ❌) on a Q&A question, ✍🏻 taken off."""
        if self.webhook is not None or self.question_ref is None or self.bot.user is None:
            return
        question = self.channel.get_partial_message(int(self.question_ref))
        marks = Marks(question, self.bot.user)  # type: ignore[arg-type]
        marks.placed, marks.working, marks.final = [WRITING], False, DONE if ok else FAILED
        self.bot.lanes.react(self.channel.id, marks)

    async def watch(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """Pass the events on, noting which question is answered."""
        async for event in events:
            if isinstance(event, Started) and event.user_message.external_ref:
                self.question_ref = event.user_message.external_ref
            yield event


async def finish(bot: MschatBot, surface: ReplySurface) -> None:
    """Answer a claimed reply again into its message, or say there it was interrupted."""
    if surface.status not in ("streaming", "interrupted"):
        return  # over already: the claim only took its place away
    stored = StoredSurface(bot, surface)
    if surface.resume:
        events = bot.manager.resume_reply(surface.reply_id)
        early: list[Event] = []
        try:
            # the core may refuse: then nothing was shown (waiting for the turn comes first)
            while not isinstance(started := await anext(events), Started):
                early.append(started)
        except (MschatError, StopAsyncIteration) as exc:
            log.info("reply %d is not finished again: %r", surface.reply_id, exc)
            await forget(bot, surface.reply_id)
        else:
            # a slash command's answer shows its question first, as when it was asked
            head = question_head(started.user_message.content) if stored.webhook else ""
            replay = stored.watch(_chain([*early, started], events))
            await qa.answer(bot, stored, replay, head=head)
            return
    try:
        shown = await stored.text()
        await stored._edit(content=(shown + GAVE_UP)[-2000:])
    except discord.HTTPException as exc:
        log.info(
            "reply %d: its message could not say it was interrupted: %s", surface.reply_id, exc
        )


async def _chain(first: list[Event], rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    for event in first:
        yield event
    async for event in rest:
        yield event


async def watch(bot: MschatBot, period: float) -> None:
    """Claim and finish the replies dead writers left, now and every ``period`` seconds."""
    while True:
        try:
            claimed = await bot.manager.claim_reply_surfaces()
        except DatabaseError as exc:
            log.warning("could not look for interrupted answers: %s", exc)
            claimed = []
        for surface in claimed:
            if bot.accepting:
                task = asyncio.create_task(_finish_tracked(bot, surface))
                bot.inflight.add(task)
                task.add_done_callback(bot.inflight.discard)
        await asyncio.sleep(period)


async def _finish_tracked(bot: MschatBot, surface: ReplySurface) -> None:
    try:
        await finish(bot, surface)
    except Exception:
        log.exception("finishing reply %d failed", surface.reply_id)
