"""Q&A mode: answer plain messages under the user's status.

Whether a user may chat is the core's to say (``mschat.core.eligibility``);
the bot only turns its typed refusals into silence, a hint or a ❌.

:func:`answer` streams the core's answer into a :class:`Surface`: replies to
the question here, the interaction's response for ``/chat`` and ``/private``
(``chat.py``), so both show answers alike.

Reactions are best effort: a question never waits for one (they go through
the channel's reaction lane, ``lanes.py``), while the answer's messages go
through its message lane ahead of streaming edits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import discord

from mschat.core import eligibility
from mschat.core.errors import ChatDisabled, DatabaseError, MschatError, UserIgnored
from mschat.core.events import (
    Completed,
    Event,
    Failed,
    HistoryTrimmed,
    Queued,
    Started,
    TextDelta,
    ToolCallFinished,
    WaitingForTurn,
)
from mschat.core.models import Origin, User
from mschat.discord import resume
from mschat.discord.feedback import answer_view
from mschat.discord.lanes import ANSWER, DONE, FAILED, STREAMING, WAITING, Lane, Marks
from mschat.discord.message_log import EMPTY, MessageLog
from mschat.discord.relay import ReplyStream
from mschat.discord.split import close_open_fence
from mschat.discord.texts import DISABLED_HINT, error_text, refusal_text
from mschat.discord.tool_lines import tool_line

if TYPE_CHECKING:
    from mschat.discord.bot import MschatBot

log = logging.getLogger("mschat.discord")

#: the shortest time between two "you are disabled" hints to the same user (every shard)
HINT_INTERVAL = timedelta(hours=1)
INTERRUPTED_NOTE = "\n\n*(interrupted: the bot is shutting down)*"


def mentions_bot(message: discord.Message, bot_id: int) -> bool:
    """Whether the message @mentions the bot, or its own role in the server (Discord
    offers both for "@" and the bot's name); ``@everyone`` and ``@here`` do not count."""
    if bot_id in message.raw_mentions:
        return True
    role = _own_role(message)
    return role is not None and role in message.raw_role_mentions


def _own_role(message: discord.Message) -> int | None:
    """The id of the role Discord made for the bot in the message's server, if any."""
    role = message.guild.self_role if message.guild is not None else None
    return role.id if role is not None else None


def strip_mention(text: str, bot_id: int, role_id: int | None = None) -> str:
    """The message text without the bot's mention (nor its role's)."""
    text = re.sub(rf"<@!?{bot_id}>", "", text)
    if role_id is not None:
        text = text.replace(f"<@&{role_id}>", "")
    return text.strip()


def eligible(bot: MschatBot, message: discord.Message) -> bool:
    """DMs, @mentions and Q&A channels are answered; everything else is not ours."""
    if message.guild is None:
        return True
    assert bot.user is not None
    if mentions_bot(message, bot.user.id):
        return True
    channels = bot.qa_channels
    if channels == "*":
        return True
    channel_ids = {message.channel.id}
    parent = getattr(message.channel, "parent_id", None)
    if parent:
        channel_ids.add(parent)  # threads of a Q&A channel count too
    return bool(channel_ids & set(channels))


async def _quietly(action: Awaitable[object]) -> None:
    """Await a note; when Discord refuses it, the answer goes on regardless."""
    try:
        await action
    except discord.HTTPException as exc:
        log.debug("a note failed: %s", exc)


def check_may_chat(user: User) -> None:
    """Raise the core's refusal when ``user`` may not chat, before a reaction shows work.

    The core checks this again when asked, and the rate limit, which needs the store
    (a rate-limited question gets ✍🏻, then ❌ with the core's message).
    """
    eligibility.check_not_ignored(user)
    eligibility.check_may_route(user)


class Reactions:
    """The bot's reactions on a question: ✍🏻 while it works (⏳ while it waits), then 👌 or ❌.

    Each method only says what the question should show; the channel's reaction
    lane makes the calls when Discord allows, and never holds up the answer.
    """

    def __init__(self, bot: MschatBot, message: discord.Message) -> None:
        assert bot.user is not None
        self.bot = bot
        self.message = message
        self.marks = Marks(message, bot.user)

    def _want(self) -> None:
        self.bot.lanes.react(self.message.channel.id, self.marks)

    def writing(self) -> None:
        """The answer is on its way."""
        self._want()

    def shown(self) -> None:
        """The answer's first part is out: a ✍🏻 not put yet would say nothing more."""
        self.marks.working = False

    def wait(self) -> None:
        """Another process answers in the same public session first."""
        if not self.marks.waiting:
            self.marks.waiting = True
            self._want()

    def stop_waiting(self) -> None:
        """This question's turn came (or it ended)."""
        if self.marks.waiting:
            self.marks.waiting = False
            self._want()

    def finish(self, ok: bool) -> None:
        """✍🏻 becomes 👌 or ❌."""
        self.marks.waiting = self.marks.working = False
        self.marks.final = DONE if ok else FAILED
        self._want()


async def handle_message(bot: MschatBot, message: discord.Message) -> None:
    """Answer one plain message if it is eligible and the core lets the user chat."""
    if message.author.bot or bot.user is None or message.author.id == bot.user.id:
        return
    if message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return
    if not eligible(bot, message):
        return
    manager = bot.manager
    dm = message.guild is None
    mentioned = mentions_bot(message, bot.user.id)
    addressed = dm or mentioned
    text = strip_mention(message.content, bot.user.id, _own_role(message))
    logged = MessageLog(manager, message, text, mention=mentioned)
    try:
        user = await manager.user("discord", str(message.author.id), name=message.author.name)
    except DatabaseError as exc:
        await _refuse(bot, message, exc)
        return
    try:
        check_may_chat(user)
    except UserIgnored as exc:
        await logged.refused(user, exc)  # nothing else is stored or answered, nothing says so
        return
    except ChatDisabled as exc:
        if addressed:
            await _hint(bot, message, user)
        await logged.refused(user, exc)
        return
    if not text:
        await logged.refused(user, EMPTY)
        return

    reactions = Reactions(bot, message)
    reactions.writing()

    origin = Origin.DISCORD_DM if dm else Origin.DISCORD_GUILD
    # the core fetches each file from Discord's CDN, within its limits
    files = [attachment.url for attachment in message.attachments]
    events = manager.chat(
        user, text, origin=origin, external_ref=str(message.id), attachments=files
    )
    try:
        error = await answer(bot, MessageSurface(bot, reactions), events)
    except asyncio.CancelledError:
        await logged.interrupted(user)
        raise
    await logged.answered(user, error)


class LineNotice:
    """A message saying where a question waits in line, edited as that changes.

    Only the latest text shows, at most one edit per ``interval``, through the
    lane behind answers; once settled, the answer (or a refusal) has the message.
    """

    def __init__(self, lane: Lane, show: Callable[[str], Awaitable[object]], interval: float):
        self.lane = lane
        self.interval = interval
        self._show = show
        self._wanted: str | None = None
        self._shown: str | None = None
        self._editing = False
        self._over = False
        self._task: asyncio.Future[None] | None = None

    def update(self, text: str) -> None:
        """Show ``text`` soon, unless a later one comes first."""
        if self._over:
            return
        self._wanted = text
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._over and self._wanted != self._shown:
            text = self._wanted
            assert text is not None
            try:
                await self.lane.run(STREAMING, functools.partial(self._edit, text))
            except discord.HTTPException as exc:
                log.debug("the place in line was not shown: %s", exc)
                return
            self._shown = text
            await asyncio.sleep(self.interval)

    async def _edit(self, text: str) -> None:
        # its turn in the lane came: from here on it lands (see settle)
        if self._over:
            return
        self._editing = True
        try:
            await self._show(text)
        finally:
            self._editing = False

    async def settle(self) -> None:
        """No more edits; one under way lands first, so it never overwrites what follows."""
        self._over = True
        task = self._task
        if task is None or task.done():
            return
        if not self._editing:
            task.cancel()  # waiting for its turn in the lane, or between two edits
        await asyncio.wait([task])


class Surface(Protocol):
    """Where an answer shows: replies to a question (Q&A) or an interaction's response."""

    lane: Lane

    async def send(self, part: str, view: discord.ui.View | None) -> discord.Message:
        """Send a new part of the answer."""
        ...

    async def note(self, text: str, *, shown: bool) -> None:
        """Show a short error line (``shown``: some of the answer is out already)."""
        ...

    def waiting(self, on: bool) -> None:
        """Another process answers in the same public session first (or no longer)."""
        ...

    def in_line(self, text: str) -> None:
        """The question waits in the queue: ``text`` says where (each change)."""
        ...

    def place(self, first: discord.Message) -> resume.Place:
        """Where the answer shows once ``first`` is sent, for a restarted bot."""
        ...

    def finished(self, ok: bool) -> None:
        """The answer is over, well or not."""
        ...


class MessageSurface:
    """Q&A mode: the answer replies to the question, which carries the reactions."""

    def __init__(self, bot: MschatBot, reactions: Reactions) -> None:
        self.bot = bot
        self.reactions = reactions
        self.message = reactions.message
        self.lane = bot.lanes.messages(self.message.channel.id)
        # the question may be deleted meanwhile: then the answer is a plain message
        self.reference = self.message.to_reference(fail_if_not_exists=False)
        #: the reply saying where the question waits in line; the answer edits it
        self.placeholder: discord.Message | None = None
        self.notice = LineNotice(self.lane, self._show_line, bot.edit_interval)

    async def _show_line(self, text: str) -> None:
        if self.placeholder is None:
            self.placeholder = await self.message.channel.send(
                text, reference=self.reference, mention_author=False
            )
        else:
            self.placeholder = await self.placeholder.edit(content=text)

    async def _take_placeholder(self) -> discord.Message | None:
        await self.notice.settle()
        placeholder, self.placeholder = self.placeholder, None
        return placeholder

    async def _into_placeholder(
        self, text: str, view: discord.ui.View | None
    ) -> discord.Message | None:
        """The message that said the place in line, now saying ``text`` (None: none is)."""
        placeholder = await self._take_placeholder()
        if placeholder is None:
            return None
        try:
            # the placeholder has no buttons: None leaves it so
            return await placeholder.edit(content=text, view=view)
        except discord.NotFound:  # deleted meanwhile: a new reply instead
            return None

    async def send(self, part: str, view: discord.ui.View | None) -> discord.Message:
        """A reply to the question (its ✍🏻 says nothing more once this is out)."""
        channel = self.message.channel
        # the message that said the place in line is the answer's first, if there is one
        sent = await self._into_placeholder(part, view)
        if sent is None:
            if view is None:
                sent = await channel.send(part, reference=self.reference, mention_author=False)
            else:
                sent = await channel.send(
                    part, reference=self.reference, mention_author=False, view=view
                )
        self.reactions.shown()
        return sent

    async def note(self, text: str, *, shown: bool) -> None:
        """A short reply to the question (the one saying its place in line becomes it)."""
        if await self._into_placeholder(text, None) is None:
            await _reply(self.bot, self.message, text)

    def place(self, first: discord.Message) -> resume.Place:
        """The answer's first message in the question's channel."""
        return resume.message_place(first)

    def waiting(self, on: bool) -> None:
        """⏳ on the question while it waits."""
        if on:
            self.reactions.wait()
        else:
            self.reactions.stop_waiting()

    def in_line(self, text: str) -> None:
        """A reply to the question says where it waits; the answer replaces it."""
        self.notice.update(text)

    def finished(self, ok: bool) -> None:
        """✍🏻 becomes 👌 or ❌."""
        self.reactions.finish(ok)


async def answer(
    bot: MschatBot, surface: Surface, events: AsyncIterator[Event], *, head: str = ""
) -> Exception | None:
    """Stream the core's answer into ``surface`` by edits, with the feedback buttons.

    ``head`` goes before the answer's text. Returns the error the answer ended
    with (None when it is complete). Cancelled (the bot shuts down), the answer
    says it was interrupted, then the cancellation goes on.
    """
    reply_id: int | None = None

    async def send(part: str, view: discord.ui.View | None) -> discord.Message:
        sent = await surface.send(part, view)
        if not stream.sent and reply_id is not None:
            # where it shows, so that a bot restarted mid-answer finishes it there
            await resume.remember(bot, reply_id, surface.place(sent))
        return sent

    stream = ReplyStream(send, interval=bot.edit_interval, lane=surface.lane, head=head)
    error: Exception | None = None
    note = ""
    spoke = False  # the model said something (tool lines alone are no answer)
    try:
        async for event in events:
            if isinstance(event, WaitingForTurn):
                surface.waiting(True)
                if isinstance(event, Queued):
                    surface.in_line(in_line_text(event))
            elif isinstance(event, Started):
                reply_id = event.reply_id
                note += _left_session_note(event)
                surface.waiting(False)
            elif isinstance(event, TextDelta):
                spoke = spoke or bool(event.text.strip())
                stream.feed(event.text)
            elif isinstance(event, ToolCallFinished):
                _show_tool_call(stream, event)
            elif isinstance(event, HistoryTrimmed):
                note += (
                    f"\n\n-# {event.dropped} older message(s) of this session were left out "
                    "to fit the model's context window."
                )
            elif isinstance(event, Failed):
                error = event.error
            elif isinstance(event, Completed):
                error = None
    except asyncio.CancelledError:
        await _finish(
            bot, surface, stream, reply_id, suffix=INTERRUPTED_NOTE, ok=False, spoke=spoke
        )
        raise
    except MschatError as exc:
        error = exc
        if isinstance(exc, DatabaseError):
            log.warning("answering failed: %s", exc)
    except Exception as exc:
        log.exception("answering failed")
        error = exc
    await _finish(
        bot,
        surface,
        stream,
        reply_id,
        ok=error is None,
        spoke=spoke,
        suffix=note if error is None else "",
        error_note=refusal_text(error) if error is not None else None,
    )
    return error


def _show_tool_call(stream: ReplyStream, event: ToolCallFinished) -> None:
    """A tool call's line in the answer where it happened, on a line of its own."""
    text = close_open_fence(stream.text)  # never inside the model's code block
    lead = text[len(stream.text) :]
    if text and not text.endswith("\n"):
        lead += "\n"
    stream.feed(f"{lead}{tool_line(event)}\n")


def in_line_text(event: Queued) -> str:
    """What a waiting question's message says (the core's words)."""
    return f"{WAITING} {event.text}…"


def _left_session_note(started: Started) -> str:
    """Say so when the current session was removed or made private by its creator
    (or is public, for a private question).

    The core then starts a new session; the user must not be surprised.
    """
    if started.left_reason == "private":
        return (
            f"\n\n-# Session #{started.left_session_id} is private to its creator now, "
            "so this question started a new session."
        )
    if started.left_reason == "removed":
        return (
            f"\n\n-# Session #{started.left_session_id} was removed, "
            "so this question started a new session."
        )
    if started.left_reason == "public":
        return (
            f"\n\n-# Your current session #{started.left_session_id} is public, "
            "so this private question started a new private session."
        )
    return ""


async def _finish(
    bot: MschatBot,
    surface: Surface,
    stream: ReplyStream,
    reply_id: int | None,
    *,
    ok: bool,
    spoke: bool,
    suffix: str = "",
    error_note: str | None = None,
) -> None:
    """Final text, the reply's Discord id stored with it, an error note, the end shown."""
    try:
        if ok and not spoke:
            stream.feed("*(the model returned an empty reply)*")
        view = answer_view(bot, reply_id) if ok and reply_id is not None else None
        sent = await stream.finish(suffix, view)
    except discord.HTTPException as exc:
        log.warning("could not deliver the answer: %s", exc)
        sent, ok = stream.sent, False
    if reply_id is not None and sent:
        # stored before the end is shown: whoever sees 👌 finds the answer by its message
        with contextlib.suppress(DatabaseError):  # gone mid-answer: already said
            await bot.manager.set_external_ref(reply_id, str(sent[0].id))
    if error_note:
        await _quietly(surface.note(error_note, shown=bool(sent)))
    surface.finished(ok)
    if reply_id is not None:
        await resume.forget(bot, reply_id)


async def _refuse(bot: MschatBot, message: discord.Message, error: MschatError) -> None:
    """❌ and one short line: the question could not even be looked at (nothing stored)."""
    log.warning("refused message %s: %s", message.id, error)
    Reactions(bot, message).finish(False)
    await _reply(bot, message, error_text(error))


async def _reply(bot: MschatBot, message: discord.Message, text: str) -> None:
    """A short note replying to ``message``, sent with the answers of its channel."""
    lane = bot.lanes.messages(message.channel.id)
    await _quietly(lane.run(ANSWER, lambda: message.reply(text, mention_author=False)))


async def _hint(bot: MschatBot, message: discord.Message, user: User) -> None:
    """Tell a disabled user how to enable the bot, at most once per hour whichever shard hears."""
    if await bot.manager.claim_notice(user, "disabled_hint", HINT_INTERVAL, source="discord"):
        await _reply(bot, message, DISABLED_HINT)
