"""``/chat``, ``/private`` and ``/clear``: Q&A mode as slash commands.

``/chat prompt`` answers in the channel and ``/private prompt`` only to its
caller (an ephemeral response, in a private session), both under the caller's
status like a plain message, streamed by edits of the interaction's response
with Q&A mode's code (``qa.answer``). ``/clear`` makes the next question start
a fresh session.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from mschat.core.models import Origin
from mschat.discord import qa, resume
from mschat.discord.commands import Ctx, handle
from mschat.discord.lanes import Lane
from mschat.discord.message_log import outcome, reason
from mschat.discord.texts import question_head

if TYPE_CHECKING:
    from mschat.discord.bot import MschatBot

CLEARED = (
    "🧹 Your next question starts a new session (status **new**); "
    "your earlier sessions are kept in `/user`."
)

WAITING = "⏳ Another answer in this session comes first; yours follows."
SHUTTING_DOWN = "The bot is restarting; ask again in a moment."


class InteractionSurface:
    """An answer as an interaction's response: the first part edits the deferred
    reply, further parts are followups (ephemeral ones for ``/private``)."""

    def __init__(
        self, interaction: discord.Interaction, *, private: bool, interval: float = 1.0
    ) -> None:
        self.interaction = interaction
        self.private = private
        # its token's 15 minutes run from about now (Discord's clock and ours may differ)
        self.received = datetime.now(UTC)
        # an interaction's token has rate limits of its own, not its channel's
        self.lane = Lane()
        self._first = True
        # "⏳ waiting…" (or the place in line) on the deferred reply
        self._notice = qa.LineNotice(self.lane, self._show_notice, interval)

    async def _show_notice(self, text: str) -> None:
        await self.interaction.edit_original_response(content=text)

    async def _settled(self) -> None:
        """Let the waiting notice land first, so it never overwrites what follows it."""
        await self._notice.settle()

    async def send(self, part: str, view: discord.ui.View | None) -> discord.Message:
        """The deferred reply becomes the first part; later parts follow it."""
        if self._first:
            self._first = False
            await self._settled()
            return await self.interaction.edit_original_response(content=part, view=view)
        options: dict[str, Any] = {"ephemeral": self.private, "wait": True}
        if view is not None:
            options["view"] = view
        return await self.interaction.followup.send(part, **options)

    async def note(self, text: str, *, shown: bool) -> None:
        """An error line: only for the caller, unless the channel saw part of the answer."""
        await self._settled()
        if shown:
            await self.interaction.followup.send(text, ephemeral=self.private)
        elif self.private:
            await self.interaction.edit_original_response(content=text)
        else:
            # the channel's "thinking…" goes; the refusal is the caller's business
            await self.interaction.delete_original_response()
            await self.interaction.followup.send(text, ephemeral=True)

    def place(self, first: discord.Message) -> resume.Place:
        """The interaction's original response, while its token lasts."""
        return resume.interaction_place(self.interaction, first, self.received)

    def waiting(self, on: bool) -> None:
        """The deferred reply says so until the answer replaces it."""
        if on and self._first:
            self._notice.update(WAITING)

    def in_line(self, text: str) -> None:
        """The deferred reply says where the question waits, until the answer replaces it."""
        if self._first:
            self._notice.update(text)

    def finished(self, ok: bool) -> None:
        """Nothing to mark: the answer's text and buttons say it."""


async def ask(
    bot: MschatBot,
    interaction: discord.Interaction,
    prompt: str,
    *,
    private: bool,
    attachment: discord.Attachment | None = None,
) -> None:
    """Answer ``prompt`` (with its file) as Q&A mode would, as the interaction's response."""

    async def body(ctx: Ctx) -> None:
        dm = interaction.guild_id is None
        events = ctx.manager.chat(
            ctx.user,
            prompt,
            origin=Origin.DISCORD_DM if dm else Origin.DISCORD_GUILD,
            private=private,
            external_ref=str(interaction.id),
            attachments=[attachment.url] if attachment is not None else [],
        )
        surface = InteractionSurface(interaction, private=private, interval=bot.edit_interval)
        try:
            error = await qa.answer(bot, surface, events, head=question_head(prompt))
        except asyncio.CancelledError:
            ctx.outcome = ("interrupted", None)
            raise
        if error is not None:
            ctx.outcome = (outcome(error), reason(error))

    name = "private" if private else "chat"
    if not bot.accepting:  # shutting down: shutdown would not wait for this answer
        await interaction.response.send_message(SHUTTING_DOWN, ephemeral=True)
        return
    with bot.in_flight():
        await handle(
            bot,
            interaction,
            "slash_command",
            name,
            body,
            ephemeral=private,
            # the question itself is stored with the session (an ignored user's nowhere)
            payload={"name": name, "length": len(prompt)},
        )


def register(bot: MschatBot) -> None:
    """Add /chat, /private and /clear to the bot's tree."""
    tree = bot.tree

    @tree.command(name="chat", description="Ask the model; the answer is posted in this channel")
    @app_commands.describe(prompt="Your question", attachment="An image or a text file")
    async def chat_command(
        interaction: discord.Interaction,
        prompt: str,
        attachment: discord.Attachment | None = None,
    ) -> None:
        await ask(bot, interaction, prompt, private=False, attachment=attachment)

    @tree.command(name="private", description="Ask the model; only you see question and answer")
    @app_commands.describe(prompt="Your question", attachment="An image or a text file")
    async def private_command(
        interaction: discord.Interaction,
        prompt: str,
        attachment: discord.Attachment | None = None,
    ) -> None:
        await ask(bot, interaction, prompt, private=True, attachment=attachment)

    @tree.command(name="clear", description="Start your next question in a new session")
    async def clear_command(interaction: discord.Interaction) -> None:
        async def body(ctx: Ctx) -> None:
            ctx.user = await ctx.manager.clear_current_session(ctx.user)
            await ctx.show(CLEARED)

        await handle(bot, interaction, "slash_command", "clear", body)
