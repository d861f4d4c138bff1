"""Slash commands, the "Session info" message command and the component router.

Every interaction is acknowledged (deferred) first, then logged to the
``interactions`` table, then handled; errors become one ephemeral line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands

from mschat.core.costs import parse_since
from mschat.core.errors import (
    DatabaseError,
    InvalidInput,
    MschatError,
    NotFound,
    PermissionDenied,
)
from mschat.core.models import Session, User
from mschat.core.rules import MAX_TOKENS_LIMIT, validate_max_tokens, validate_temperature
from mschat.discord import components as ui
from mschat.discord.components import CustomId
from mschat.discord.texts import clip, error_text, session_text, user_text

if TYPE_CHECKING:
    from mschat.discord.bot import MschatBot

log = logging.getLogger("mschat.discord")

T = TypeVar("T")

#: turns loaded for a session panel (the text keeps as many as fit)
PANEL_TURNS = 20


class Refused(Exception):
    """The user may not do this; the message is shown to them privately."""


class Ctx:
    """One interaction being handled: how to answer it, who asked."""

    def __init__(
        self,
        bot: MschatBot,
        interaction: discord.Interaction,
        *,
        update: bool,
        ephemeral: bool = True,
    ) -> None:
        self.bot = bot
        self.manager = bot.manager
        self.interaction = interaction
        self.update = update  # a component's deferred update (the panel is edited in place)
        self.ephemeral = ephemeral  # a command's deferred reply only its caller sees
        self.user: User
        #: how the interaction ended, when the body said so itself (status, error)
        self.outcome: tuple[str, str | None] | None = None

    async def show(
        self, content: str, *, view: discord.ui.View | None = None, file: discord.File | None = None
    ) -> None:
        """Replace the deferred response (a command's reply, or the clicked panel)."""
        kwargs: dict[str, Any] = {"content": content, "view": view}
        if file is not None:
            kwargs["attachments"] = [file]
        elif not self.update:
            kwargs["attachments"] = []
        await self.interaction.edit_original_response(**kwargs)

    async def private(
        self, content: str, *, view: discord.ui.View | None = None, file: discord.File | None = None
    ) -> None:
        """A new ephemeral message (after an update-defer), else the deferred reply.

        A public deferred reply ("thinking…" in the channel) makes way for it.
        """
        if not self.update and self.ephemeral:
            await self.show(content, view=view, file=file)
            return
        if not self.update:
            await self.interaction.delete_original_response()
        kwargs: dict[str, Any] = {"ephemeral": True}
        if view is not None:
            kwargs["view"] = view
        if file is not None:
            kwargs["file"] = file
        await self.interaction.followup.send(content, **kwargs)


Handler = Callable[[Ctx], Awaitable[None]]


async def handle(
    bot: MschatBot,
    interaction: discord.Interaction,
    kind: str,
    name: str,
    body: Handler,
    *,
    update: bool = False,
    ephemeral: bool = True,
    payload: dict[str, Any] | None = None,
) -> None:
    """Defer, log, run ``body``, translate errors; record how it ended.

    ``ephemeral=False``: the reply is for the whole channel. ``payload``: what is
    logged instead of the interaction's data.
    """
    # 1. acknowledge within Discord's 3 s, before any store or provider call
    if update:
        await interaction.response.defer()
    else:
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
    ctx = Ctx(bot, interaction, update=update, ephemeral=ephemeral)
    manager = bot.manager
    log_id: int | None = None
    status, error = "ok", None
    try:
        ctx.user = await manager.user(
            "discord", str(interaction.user.id), name=interaction.user.name
        )
        log_id = await manager.log_interaction(
            user_id=ctx.user.id,
            source="discord",
            kind=kind,
            name=name,
            guild_id=str(interaction.guild_id) if interaction.guild_id else None,
            channel_id=str(interaction.channel_id) if interaction.channel_id else None,
            payload=payload if payload is not None else dict(interaction.data or {}),  # type: ignore[arg-type]
            status="received",
        )
        await body(ctx)
    except Refused as refusal:
        status, error = "refused", str(refusal)
        await ctx.private(f"🚫 {refusal}")
    except PermissionDenied as exc:
        status, error = "refused", str(exc)
        await ctx.private(error_text(exc))
    except MschatError as exc:
        status, error = "error", str(exc)
        await ctx.private(error_text(exc))
    except discord.HTTPException as exc:
        status, error = "error", f"discord: {exc}"
        log.warning("interaction %s: Discord refused the answer: %s", name, exc)
    except Exception as exc:
        status, error = "error", repr(exc)
        log.exception("interaction %s failed", name)
        await ctx.private(error_text(exc))
    finally:
        if ctx.outcome is not None and status == "ok":
            status, error = ctx.outcome
        if log_id is not None:
            with contextlib.suppress(DatabaseError):  # gone meanwhile: the user was told
                await manager.finish_interaction(log_id, status, error)


# ---- panels ---------------------------------------------------------------------


async def model_names(ctx: Ctx) -> list[str]:
    """Models offered in the selects: the core's one list of usable models."""
    return list(dict.fromkeys(m.name for m in await ctx.manager.list_models()))


async def chosen_model(ctx: Ctx, values: list[str]) -> str:
    """The model picked in a select, resolved by the core (a forged or stale name is refused)."""
    name = values[0]
    try:
        return (await ctx.manager.resolve_model(name)).full_name
    except NotFound:
        raise InvalidInput(f"Unknown model `{clip(name, 100)}`: pick one from the list.") from None


async def user_panel(ctx: Ctx, page: int = 0) -> tuple[str, discord.ui.View]:
    """The /user text and components for a page of sessions."""
    manager, user = ctx.manager, ctx.user
    total = await manager.count_sessions(user)
    pages = max(1, math.ceil(total / ui.PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    sessions = await manager.list_sessions(user, limit=ui.PAGE_SIZE, offset=page * ui.PAGE_SIZE)
    current = None
    if user.current_session_id is not None:
        try:
            current = await manager.get_session(user, user.current_session_id)
        except (NotFound, PermissionDenied):
            current = None
    model = _model_of(ctx, user.model)
    text = user_text(
        user,
        current,
        sessions,
        total=total,
        page=page,
        pages=pages,
        model=model,
        cost=await cost_line(ctx),
    )
    view = ui.user_view(
        user, sessions, page=page, pages=pages, models=await model_names(ctx), model=model
    )
    return text, view


async def cost_line(ctx: Ctx) -> str:
    """What the user's answers cost: in the last 30 days, and in all."""
    manager, user = ctx.manager, ctx.user
    recent = await manager.spending(user, user_id=user.id, since=parse_since("30d"))
    total = await manager.spending(user, user_id=user.id)
    return (
        f"{recent.cost.text(recent.currency)} in the last 30 days "
        f"({recent.calls} requests) · {total.cost.text(total.currency)} in all"
    )


def _model_of(ctx: Ctx, name: str | None) -> str | None:
    known = ctx.manager.known_model(name)
    return known.full_name if known else name


async def session_panel(
    ctx: Ctx, session: Session
) -> tuple[str, discord.ui.View, discord.File | None]:
    """A session's text, components and (when long) its transcript as a Markdown file."""
    manager = ctx.manager
    messages = await manager.messages(ctx.user, session.id, limit=PANEL_TURNS)
    text, truncated = session_text(session, messages, total=session.message_count)
    file = None
    if truncated:
        transcript = await manager.export_session(ctx.user, session.id, "markdown")
        file = discord.File(
            io.BytesIO(transcript.encode("utf-8")), filename=f"session-{session.id}.md"
        )
    return text, ui.session_view(session, models=await model_names(ctx)), file


# ---- slash commands ----------------------------------------------------------------


def register(bot: MschatBot) -> None:
    """Add /user, /session and the "Session info" message command to the bot's tree."""
    tree = bot.tree

    @tree.command(name="user", description="Your mschat settings, status and sessions")
    @app_commands.describe(
        system_msg="Default system message of your new sessions",
        max_tokens="Largest reply in tokens (default 600)",
        temperature="Randomness from 0 to 2 (default 0.8)",
    )
    async def user_command(
        interaction: discord.Interaction,
        system_msg: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> None:
        async def body(ctx: Ctx) -> None:
            changes: dict[str, Any] = {}
            if system_msg is not None:
                changes["system_msg"] = system_msg
            if temperature is not None:
                changes["temperature"] = validate_temperature(temperature)
            if max_tokens is not None:
                try:
                    limit = (await ctx.manager.resolve_model(ctx.user.model)).context_window
                except MschatError:
                    limit = MAX_TOKENS_LIMIT
                changes["max_tokens"] = validate_max_tokens(max_tokens, limit)
            if changes:
                ctx.user = await ctx.manager.update_user(ctx.user, ctx.user.id, **changes)
            text, view = await user_panel(ctx)
            await ctx.show(text, view=view)

        await handle(bot, interaction, "slash_command", "user", body)

    @tree.command(name="session", description="Your current session: settings and last turns")
    @app_commands.describe(name="Rename the session", system_msg="The session's system message")
    async def session_command(
        interaction: discord.Interaction,
        name: str | None = None,
        system_msg: str | None = None,
    ) -> None:
        async def body(ctx: Ctx) -> None:
            manager, user = ctx.manager, ctx.user
            if user.current_session_id is None:
                raise Refused(
                    "You have no current session. Pick one in `/user`, or set your status "
                    "to new and send a message."
                )
            session = await manager.get_session(user, user.current_session_id)
            if name is not None:
                session = await as_creator(session, manager.rename_session(user, session.id, name))
            if system_msg is not None:
                session = await as_creator(
                    session, manager.set_session_system(user, session.id, system_msg)
                )
            text, view, file = await session_panel(ctx, session)
            await ctx.show(text, view=view, file=file)

        await handle(bot, interaction, "slash_command", "session", body)

    async def session_info(interaction: discord.Interaction, message: discord.Message) -> None:
        async def body(ctx: Ctx) -> None:
            session = await _session_of(ctx, message)
            text, view, file = await session_panel(ctx, session)
            await ctx.show(text, view=view, file=file)

        await handle(bot, interaction, "message_command", "Session info", body)

    tree.add_command(app_commands.ContextMenu(name="Session info", callback=session_info))


async def _session_of(ctx: Ctx, message: discord.Message) -> Session:
    """The session a bot reply belongs to (later parts point at the question they answer)."""
    refs = [str(message.id)]
    if message.reference is not None and message.reference.message_id:
        refs.append(str(message.reference.message_id))
    for ref in refs:
        try:
            session, _ = await ctx.manager.find_by_ref(ctx.user, ref)
            return session
        except NotFound:
            continue
        except PermissionDenied:
            raise Refused("That reply belongs to a private session of another user.") from None
    raise Refused("That message is not an mschat reply (or its session was removed).")


def _creator_only(session: Session) -> str:
    return (
        f"Only the creator of session #{session.id} "
        f"({clip(session.creator_name or '?', 60)}) may change it."
    )


async def as_creator(session: Session, change: Awaitable[T]) -> T:
    """Await a change the core allows only the session's creator; its refusal says so."""
    try:
        return await change
    except PermissionDenied:
        raise Refused(_creator_only(session)) from None


# ---- components ------------------------------------------------------------------------


async def on_component(
    bot: MschatBot, interaction: discord.Interaction, cid: CustomId, values: list[str]
) -> None:
    """Route a panel's click or selection (from any message, even one sent before a restart)."""

    async def body(ctx: Ctx) -> None:
        if cid.scope == "user":
            await _user_component(ctx, cid, values)
        else:
            await _session_component(ctx, cid, values)

    await handle(bot, interaction, "component", f"{cid.scope}:{cid.action}", body, update=True)


async def _user_component(ctx: Ctx, cid: CustomId, values: list[str]) -> None:
    manager, user = ctx.manager, ctx.user
    if cid.target != user.id:
        raise Refused("These buttons belong to another user's panel; run `/user` for yours.")
    page = 0
    action = cid.action
    if action == "show_public":
        ctx.user = await manager.update_user(user, user.id, show_public=not user.show_public)
    elif action == "attach":
        ctx.user = await manager.update_user(user, user.id, attach=not user.attach)
    elif action == "model" and values:
        ctx.user = await manager.update_user(user, user.id, model=await chosen_model(ctx, values))
    elif action == "status" and values:
        ctx.user = await manager.update_user(user, user.id, status=values[0])
    elif action == "page":
        page = int((cid.arg or "0").split("-")[0])
    elif action == "session" and values:
        page = int(cid.arg or 0)
        session = await manager.get_session(user, int(values[0]))
        ctx.user = await manager.switch_session(user, session.id)
        text, view = await user_panel(ctx, page)
        await ctx.show(text, view=view)
        info, info_view, file = await session_panel(ctx, session)
        await ctx.private(info, view=info_view, file=file)
        return
    elif action == "clear":
        if cid.arg is None:
            count = await manager.count_sessions(user, include_public=False)
            await ctx.private(
                f"Remove all {count} of your sessions and their messages? This cannot be undone.",
                view=ui.confirm_view("user", user.id, "clear", "Remove all my sessions"),
            )
        elif cid.arg == "yes":
            removed = await manager.clear_sessions(user)
            await ctx.show(f"Removed {removed} session(s).", view=None)
        else:
            await ctx.show("Nothing was removed.", view=None)
        return
    text, view = await user_panel(ctx, page)
    await ctx.show(text, view=view)


async def _session_component(ctx: Ctx, cid: CustomId, values: list[str]) -> None:
    manager, user = ctx.manager, ctx.user
    try:
        session = await manager.get_session(user, cid.target)
    except PermissionDenied:
        raise Refused(f"Session #{cid.target} is private to its creator.") from None
    action = cid.action
    if action == "public":
        session = await as_creator(
            session, manager.set_session_public(user, session.id, not session.public)
        )
    elif action == "model" and values:
        model = await chosen_model(ctx, values)
        session = await as_creator(session, manager.set_session_model(user, session.id, model))
    elif action == "remove":
        if cid.arg is None:
            # no core call yet, only a question: ask the core's rule before offering it
            if not manager.can_edit(user, session):
                raise Refused(_creator_only(session))
            await ctx.private(
                f"Remove session #{session.id} ({clip(session.title, 80)}) and its "
                f"{session.message_count} messages? This cannot be undone.",
                view=ui.confirm_view("session", session.id, "remove", "Remove it"),
            )
        elif cid.arg == "yes":
            await as_creator(session, manager.remove_session(user, session.id))
            await ctx.show(f"Session #{session.id} was removed.", view=None)
        else:
            await ctx.show("The session was kept.", view=None)
        return
    text, view, file = await session_panel(ctx, session)
    await ctx.show(text, view=view, file=file)
