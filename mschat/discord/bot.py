"""The Discord bot: ``make_bot`` builds it from the core's services, ``run`` serves it.

With ``discord.shard_count`` the bot is discord.py's auto-sharded client serving
``discord.shard_ids`` (all shards when none are given). Several processes with
disjoint shard ids over one database are one bot: everything a user's events
depend on is in the database, and the process serving shard 0 (the *leader*)
is the one that syncs the application commands and logs the invite URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands

from mschat.core.errors import ConfigError
from mschat.core.services import Services
from mschat.discord import chat, commands, feedback, qa, resume
from mschat.discord.components import CustomId, MschatItem
from mschat.discord.invite import invite_url
from mschat.discord.lanes import Lanes
from mschat.visible import visible

if TYPE_CHECKING:
    from mschat.discord.interactions import Endpoint

log = logging.getLogger("mschat.discord")

#: seconds replies in flight may take to finish on shutdown before being interrupted
SHUTDOWN_GRACE = 10.0
#: seconds the reactions still queued at shutdown may take
REACTIONS_GRACE = 5.0
#: the gateway events the bot uses, and no more: every event asked for is parsed, and
#: Discord sends the bot its own reactions and typing users of busy channels otherwise
INTENTS = discord.Intents(
    guilds=True,  # guilds and channels: where a message or a command comes from
    guild_messages=True,  # Q&A in server channels and mentions
    dm_messages=True,  # Q&A in DMs
    message_content=True,  # privileged: the text of plain messages in server channels
)
TOKEN_HINT = (
    "set discord.token in the config file, or MSCHAT_DISCORD_TOKEN / DISCORD_TOKEN "
    "(Developer Portal → your application → Bot → Reset Token)"
)


class MschatBot(discord.Client):
    """A discord.py client whose commands, components and Q&A mode use one SessionManager."""

    def __init__(
        self,
        services: Services,
        *,
        guild_ids: list[int] | None = None,
        qa_channels: list[int] | str | None = None,
        edit_interval: float = 1.0,
        **options: Any,
    ) -> None:
        intents = INTENTS
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        options.setdefault("max_messages", 200)
        super().__init__(intents=intents, **options)
        self.services = services
        self.manager = services.manager
        self.guild_ids = list(guild_ids or [])
        self.qa_channels: list[int] | str = qa_channels if qa_channels is not None else []
        self.edit_interval = edit_interval
        self.lanes = Lanes()
        self.accepting = True
        self.invited = False  # the invite URL was logged (READY comes again on reconnects)
        self.inflight: set[asyncio.Task[Any]] = set()
        self._resuming: asyncio.Task[None] | None = None
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]
        commands.register(self)
        chat.register(self)

    def __repr__(self) -> str:
        return f"<MschatBot guilds={self.guild_ids} qa_channels={self.qa_channels!r}>"

    @property
    def leader(self) -> bool:
        """Whether this process syncs the commands and logs the invite (it serves shard 0)."""
        shard_ids = getattr(self, "shard_ids", None)
        return shard_ids is None or 0 in shard_ids

    async def setup_hook(self) -> None:
        """Register the persistent components, watch for dead replies, prune old logs, sync
        the commands."""
        self.add_dynamic_items(MschatItem)
        self.manager.watch_replies()
        # answers a killed bot was streaming: now, and as dead writers' leases end
        self._resuming = asyncio.get_running_loop().create_task(
            resume.watch(self, self.manager.reply_lease.total_seconds() / 2)
        )
        self.manager.keep_logs_pruned(self.services.config.get("logs", "retention_days"))
        if not self.leader:
            log.info("commands are synced by the process serving shard 0")
            return
        if self.guild_ids:
            for guild_id in self.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            log.info("commands synced to guilds %s", self.guild_ids)
        else:
            await self.tree.sync()
            log.info("commands synced globally (may take a while to appear)")

    async def on_ready(self) -> None:
        """Log who we are; the first time, how to invite the bot."""
        log.info(
            "connected as %s (%s) to %d guild(s)",
            self.user,
            getattr(self.user, "id", "?"),
            len(self.guilds),
        )
        if not self.invited and self.leader and self.application_id is not None:
            self.invited = True
            log.info("invite the bot to a server: %s", invite_url(self.application_id))

    async def on_message(self, message: discord.Message) -> None:
        """Q&A mode (tracked so shutdown can finish or interrupt it)."""
        if not self.accepting:
            return
        with self.in_flight():
            await qa.handle_message(self, message)

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Track the running answer so that shutdown finishes or interrupts it."""
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        try:
            yield
        finally:
            if task is not None:
                self.inflight.discard(task)

    async def on_component(
        self, interaction: discord.Interaction, cid: CustomId, values: list[str]
    ) -> None:
        """Called by MschatItem for every mschat button or select."""
        if cid.scope == "message":
            await feedback.on_click(self, interaction, cid)
        else:
            await commands.on_component(self, interaction, cid, values)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Modal submissions are routed by custom_id, whichever process opened the modal."""
        if interaction.type == discord.InteractionType.modal_submit:
            await feedback.on_modal(self, interaction)

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error("command %s failed: %r", getattr(interaction.command, "name", "?"), error)

    async def drain(self, grace: float = SHUTDOWN_GRACE) -> int:
        """Stop taking messages; let replies in flight finish, then interrupt the rest."""
        self.accepting = False
        if self._resuming is not None:
            self._resuming.cancel()
        pending = {t for t in self.inflight if not t.done()}
        if pending:
            log.info("waiting up to %.0fs for %d reply(ies) in flight", grace, len(pending))
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if not await self.lanes.settle(REACTIONS_GRACE):
            log.info("reactions still queued at shutdown were given up")
        return len(pending)


class ShardedMschatBot(MschatBot, discord.AutoShardedClient):
    """The bot as discord.py's auto-sharded client (``discord.shard_count``)."""

    def __repr__(self) -> str:
        return f"<ShardedMschatBot shards={self.shard_ids}/{self.shard_count}>"


def shard_options(config: Any) -> dict[str, Any]:
    """``shard_count`` / ``shard_ids`` for discord.py from the config, checked; {} unsharded."""
    count = config.get("discord", "shard_count")
    ids = config.get("discord", "shard_ids")
    if count is None:
        if ids:
            raise ConfigError(
                "discord.shard_ids needs discord.shard_count",
                hint="set discord.shard_count to the number of shards of the whole bot",
            )
        return {}
    ids = list(ids or range(count))
    wrong = [i for i in ids if not 0 <= i < count]
    if wrong or len(set(ids)) != len(ids):
        raise ConfigError(
            f"discord.shard_ids must be distinct numbers from 0 to {count - 1}, got {ids}",
            hint="each process serves its own shards of discord.shard_count",
        )
    return {"shard_count": count, "shard_ids": sorted(ids)}


def make_bot(
    services: Services,
    *,
    guild_ids: list[int] | None = None,
    qa_channels: list[int] | str | None = None,
    edit_interval: float | None = None,
    **options: Any,
) -> MschatBot:
    """Build the bot from the services; settings default to the ``discord.*`` config.

    With ``discord.shard_count`` (or ``shard_count=`` in ``options``) it is sharded.
    """
    config = services.config
    if "shard_count" not in options:
        options.update(shard_options(config))
    cls: type[MschatBot] = MschatBot
    if options.get("shard_count") is not None:
        cls = ShardedMschatBot
    if options.get("shard_count") is not None or config.get("discord", "interactions_listen"):
        # a user's events may reach two processes (a DM and a guild message on two shards,
        # two interactions through a load balancer): take turns through the database
        services.manager.share_turns()
    return cls(
        services,
        guild_ids=config.get("discord", "guild_ids") if guild_ids is None else guild_ids,
        qa_channels=config.get("discord", "qa_channels") if qa_channels is None else qa_channels,
        edit_interval=(
            config.get("discord", "edit_interval") if edit_interval is None else edit_interval
        ),
        **options,
    )


def configure_endpoints(api_base: str | None, gateway_url: str | None) -> None:
    """Point discord.py at a self-hosted Discord-compatible server (or a test fake)."""
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def describe(bot: MschatBot) -> str:
    """What this process serves, for its first log line."""
    if isinstance(bot, discord.AutoShardedClient):
        ids = ", ".join(str(i) for i in bot.shard_ids or [])
        role = "syncs commands" if bot.leader else "leaves commands to shard 0"
        return f"shards {ids} of {bot.shard_count} ({role})"
    return "unsharded"


class VisibleFormatter(logging.Formatter):
    """Log lines carry Discord's texts and errors: a terminal shows their controls, never obeys."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record (traceback included) with control characters made visible."""
        return visible(super().format(record))


def setup_logging(level: str) -> None:
    """Log to stderr at ``level`` (discord.py's own logger included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(VisibleFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.getLogger().handlers[:] = [handler]
    set_log_level(level)


def set_log_level(level: str) -> None:
    """Log at ``level`` from now on (at start, and when the live setting changes)."""
    logging.getLogger().setLevel(level.upper())
    # discord.py is chatty at debug; keep it one notch quieter than ours
    quieter = logging.INFO if level.lower() == "debug" else logging.NOTSET
    logging.getLogger("discord").setLevel(quieter)


async def serve(
    bot: MschatBot,
    token: str,
    *,
    stop: asyncio.Event | None = None,
    grace: float = SHUTDOWN_GRACE,
    endpoint: Endpoint | None = None,
    gateway: bool = True,
) -> None:
    """Log in, run until ``stop`` is set (or the gateway gives up), then shut down cleanly.

    ``endpoint``: also receive interactions as signed HTTP POSTs; ``gateway=False``:
    only those (no gateway connection, so no plain messages).
    """
    stop = stop or asyncio.Event()
    log.info("starting the bot: %s", describe(bot) if gateway else "HTTP interactions only")
    try:
        await bot.login(token)
        if endpoint is not None:
            await endpoint.start()
    except discord.LoginFailure:
        await bot.close()
        raise ConfigError("Discord rejected the bot token", hint=TOKEN_HINT) from None
    except BaseException:
        await bot.close()
        raise
    if not gateway:
        log.info("no gateway connection: plain messages (Q&A mode) are not answered")
    runner = (
        asyncio.create_task(bot.connect(reconnect=True), name="mschat-discord-gateway")
        if gateway
        else None
    )
    stopper = asyncio.create_task(stop.wait(), name="mschat-discord-stop")
    try:
        waited = {stopper} if runner is None else {runner, stopper}
        done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            assert runner is not None
            try:
                runner.result()
            except discord.PrivilegedIntentsRequired:
                raise ConfigError(
                    "Discord refused the message-content intent",
                    hint="enable 'Message Content Intent' under Bot in the Developer Portal",
                ) from None
            except discord.LoginFailure:
                raise ConfigError("Discord rejected the bot token", hint=TOKEN_HINT) from None
    finally:
        stopper.cancel()
        if endpoint is not None:
            await endpoint.close()  # no new interactions; those received got their response
        interrupted = await bot.drain(grace)
        if interrupted:
            log.warning("%d reply(ies) were interrupted by the shutdown", interrupted)
        await bot.close()
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner


def run(services: Services, log_level: str | None = None, *, gateway: bool = True) -> None:
    """``mschat serve-discord``: serve until SIGINT/SIGTERM (``gateway=False``: only the
    HTTP interactions endpoint)."""
    config = services.config
    token = config.get("discord", "token")
    if not token:
        raise ConfigError("no Discord bot token is configured", hint=TOKEN_HINT)
    from mschat.discord.interactions import check_endpoint_config, endpoint_of

    check_endpoint_config(config, gateway=gateway)
    setup_logging(log_level or config.get("discord", "log_level"))
    if log_level is None:  # not fixed by --log-level: the live setting's
        services.live.on_change(lambda live: set_log_level(live.get("discord.log_level")))
    configure_endpoints(config.get("discord", "api_base"), config.get("discord", "gateway_url"))

    async def main() -> None:
        services.live.start()  # `mschat config set` applies here within a second
        services.reload_on_sighup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            bot = make_bot(services)
            await serve(bot, token, stop=stop, endpoint=endpoint_of(bot), gateway=gateway)
        finally:
            await services.aclose()

    asyncio.run(main())
    log.info("stopped")
