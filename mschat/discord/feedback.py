"""Feedback under answers: the buttons with their counts, clicks, the "Other…" text.

Counts come from the database, never from memory: several processes (shards)
serve clicks on one message, and each edits the buttons with the counts it
reads after recording its vote. A process that lost the race (its edit landed
after a newer one) reads again and edits again, so the last edit shows every
vote committed before it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from mschat.discord.commands import Ctx, Refused, handle
from mschat.discord.components import CustomId, feedback_view

if TYPE_CHECKING:
    from mschat.discord.bot import MschatBot

#: the modal's custom_id carries the reply it is about
FEEDBACK_MODAL = re.compile(r"mschat:fbtext:(\d{1,20})")

#: edits of the buttons one click makes at most while newer votes keep arriving
MAX_REFRESHES = 3

OFF = "Feedback is switched off on this bot."
THANKS = "Thanks, your feedback ({kind}) was recorded."
AGAIN = "You already marked this answer as {kind}; it counts once."


def enabled(bot: MschatBot) -> bool:
    """Whether answers carry feedback buttons and clicks on them are recorded."""
    return bool(bot.services.config.get("feedback", "enabled"))


def answer_view(bot: MschatBot, reply_id: int) -> discord.ui.View | None:
    """The buttons under a new answer, or None when feedback is off."""
    return feedback_view(reply_id) if enabled(bot) else None


class FeedbackModal(discord.ui.Modal):
    """Free-text feedback on one answer.

    Its submission is routed by its custom_id (``on_modal``), not by this object:
    it may reach another process (a shard) or come after a restart.
    """

    text: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(
        label="What was wrong or missing?",
        custom_id="text",
        style=discord.TextStyle.paragraph,
        max_length=1000,
    )

    def __init__(self, reply_id: int) -> None:
        super().__init__(title="Feedback on this answer", custom_id=f"mschat:fbtext:{reply_id}")
        # finished before it is sent: discord.py keeps no copy waiting for the submission
        self.stop()


async def on_click(bot: MschatBot, interaction: discord.Interaction, cid: CustomId) -> None:
    """A feedback button: record the vote and show the new counts (or ask for a text)."""
    kind = cid.arg or "other"
    if not enabled(bot):
        await handle(bot, interaction, "component", f"feedback:{kind}", _refuse_off)
        return
    if kind == "other":
        # the modal is the acknowledgement; nothing is stored until it is submitted
        await interaction.response.send_modal(FeedbackModal(cid.target))
        return

    async def body(ctx: Ctx) -> None:
        counted = await ctx.manager.add_feedback(ctx.user, cid.target, kind)
        await show_counts(ctx, cid.target)
        await ctx.private((THANKS if counted else AGAIN).format(kind=kind))

    await handle(bot, interaction, "component", f"feedback:{kind}", body, update=True)


async def on_modal(bot: MschatBot, interaction: discord.Interaction) -> None:
    """A submitted feedback text: stored as kind "other"; every text counts."""
    data: dict[str, Any] = dict(interaction.data or {})  # type: ignore[arg-type]
    match = FEEDBACK_MODAL.fullmatch(str(data.get("custom_id", "")))
    if match is None:
        return
    reply_id = int(match[1])
    text = _submitted_text(data, "text")[:1000]
    if not enabled(bot):
        await handle(bot, interaction, "modal", "feedback:other", _refuse_off)
        return

    async def body(ctx: Ctx) -> None:
        await ctx.manager.add_feedback(ctx.user, reply_id, "other", text)
        if ctx.update:
            await show_counts(ctx, reply_id)
        await ctx.private("Thanks, your feedback was recorded.")

    # a modal opened from the buttons carries their message: its counts are edited
    on_message = interaction.message is not None
    await handle(bot, interaction, "modal", "feedback:other", body, update=on_message)


async def show_counts(ctx: Ctx, reply_id: int) -> None:
    """Edit the clicked message's buttons to the counts in the database (see the module)."""
    shown: dict[str, int] | None = None
    for _ in range(MAX_REFRESHES):
        counts = await ctx.manager.feedback_counts(reply_id)
        if counts == shown:
            return
        await ctx.interaction.edit_original_response(view=feedback_view(reply_id, counts))
        shown = counts


async def _refuse_off(ctx: Ctx) -> None:
    raise Refused(OFF)


def _submitted_text(data: dict[str, Any], custom_id: str) -> str:
    """The value of a modal's text input, from the raw submission."""
    stack = list(data.get("components") or [])
    while stack:
        component = stack.pop(0)
        if isinstance(component, dict):
            if component.get("custom_id") == custom_id and "value" in component:
                return str(component["value"])
            stack.extend(component.get("components") or [])
            if isinstance(component.get("component"), dict):
                stack.append(component["component"])
    return ""
