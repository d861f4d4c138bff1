"""A loopback fake of Discord: REST under ``/api/v10`` plus a websocket gateway.

The real discord.py connects to it when ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY`` point here (``mschat.discord.bot.configure_endpoints``).
It records every REST call, keeps the messages the bot sends (with their
components, so a test can "click" a button of any stored message, even after a
bot restart) and lets tests dispatch MESSAGE_CREATE / INTERACTION_CREATE.

Shards: a bot that IDENTIFYs with ``shard: [id, count]`` gets READY and
GUILD_CREATE for the guilds of its shard only, and the events of a guild reach
the connection serving ``(guild_id >> 22) % count`` (DMs: shard 0), as Discord
routes them. ``add_guild`` makes more guilds (on a chosen shard), and
``GET /gateway/bot`` recommends ``recommended_shards``.

Echoes (``echo=True``): like Discord, the bot also receives its own messages,
edits and reactions, and a TYPING_START before each user message, when the
intents of its IDENTIFY ask for them.

Rate limits (``rate_limits=True`` or :meth:`FakeDiscord.limit_rates`): the
routes the bot uses are counted in per-channel buckets and announced in
``X-RateLimit-*`` headers the way Discord does; a call over the limit gets a
429 with a JSON ``retry_after`` (and the ``Via`` header without which
discord.py would not retry it). ``rate_scale`` shortens every window alike.

Run standalone (then point ``mschat serve-discord`` at the printed URLs)::

    python -m tests.fakes.fake_discord --port 8090

Gotchas learnt the hard way: JSON responses carry ``Content-Type``
exactly ``application/json``; interaction callbacks answer JSON
``{"interaction": …, "resource": …}``; guild members need ``flags``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

GUILD_ID = 900_000_000_000_000_001
QA_CHANNEL_ID = 900_000_000_000_000_010
OTHER_CHANNEL_ID = 900_000_000_000_000_011
BOT_ID = 900_000_000_000_000_100
APP_ID = 900_000_000_000_000_200
#: the role Discord makes for the bot in each guild (the same id in every guild of the fake)
BOT_ROLE_ID = 900_000_000_000_000_300
EPHEMERAL = 1 << 6
#: gateway intents (bits of IDENTIFY's ``intents``) the echoes depend on
GUILD_MESSAGES, REACTIONS_INTENT, TYPING = 1 << 9, 1 << 10, 1 << 11
DM_MESSAGES, DM_REACTIONS, DM_TYPING = 1 << 12, 1 << 13, 1 << 14
LOADING = 1 << 7
TIMESTAMP = "2026-01-01T00:00:00.000000+00:00"


@dataclass
class RestCall:
    """One REST request the bot made."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any  # parsed JSON (payload_json for multipart), or None
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int = 0  # the status answered (0 while it is being handled)
    bucket: str | None = None  # the rate-limit bucket it counted in, when limits are on


@dataclass(frozen=True)
class Limit:
    """One of Discord's per-route limits: ``limit`` calls per ``per`` seconds per channel."""

    bucket: str
    limit: int
    per: float

    @property
    def hash(self) -> str:
        """The ``X-RateLimit-Bucket`` value announced for it (opaque, stable)."""
        return hashlib.sha1(self.bucket.encode()).hexdigest()[:32]


#: reactions (add and remove share one bucket per channel): about 1 per 0.25 s
REACTIONS = Limit("reactions", 1, 0.25)
#: sending and editing messages share one bucket per channel: 5 per 5 s
MESSAGES = Limit("messages", 5, 5.0)
#: deleting a message has a bucket of its own
DELETES = Limit("message-delete", 5, 1.0)


@dataclass
class Guild:
    """A fake guild: its id and its text channels (id, name)."""

    id: int
    name: str
    channels: list[tuple[int, str]]


@dataclass
class Connection:
    """One gateway websocket: the shard it identified for, if any."""

    ws: web.WebSocketResponse
    shard: tuple[int, int] | None = None
    intents: int = 0

    def serves(self, guild_id: int | None) -> bool:
        """Whether Discord would route an event of this guild (None: a DM) to this shard."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id


def _json(data: Any, status: int = 200) -> web.Response:
    # exactly application/json: discord.py treats "…; charset=utf-8" as text
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    """A Discord user object."""
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member_payload(user: dict[str, Any] | None = None) -> dict[str, Any]:
    """A guild member object (``flags`` is required by discord.py)."""
    data: dict[str, Any] = {
        "roles": [],
        "joined_at": TIMESTAMP,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": "2251799813685247",
    }
    if user is not None:
        data["user"] = user
    return data


class FakeDiscord:
    """Discord REST + gateway on 127.0.0.1 (``await start()``; ``await stop()``)."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: bool = False,
        rate_scale: float = 1.0,
        recommended_shards: int = 1,
        echo: bool = False,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.calls: list[RestCall] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self._replies: dict[str, list[int]] = {}  # message id -> ids of the bot's replies
        self.files: dict[int, dict[str, bytes]] = {}
        self.reactions: dict[int, list[str]] = {}  # message id -> bot's current reactions
        self.edits: dict[int, int] = {}  # message id -> number of PATCHes
        self.commands: dict[str, list[dict[str, Any]]] = {}  # "global" or guild id -> commands
        self.interactions: dict[str, dict[str, Any]] = {}  # token -> interaction payload
        self.originals: dict[str, int] = {}  # interaction token -> @original message id
        self.users: dict[int, dict[str, Any]] = {}
        self.bot_user = user_payload(BOT_ID, "mschat-bot", bot=True)
        self.identified = 0
        self.identifies: list[tuple[int, int] | None] = []  # the shard field of each IDENTIFY
        self.ready_guilds: list[list[int]] = []  # the guilds of each READY
        #: (event, shard id or None, id of the message or interaction) per delivery
        self.deliveries: list[tuple[str, int | None, str]] = []
        self.guilds: dict[int, Guild] = {
            GUILD_ID: Guild(
                GUILD_ID, "Fake Guild", [(QA_CHANNEL_ID, "qa"), (OTHER_CHANNEL_ID, "general")]
            )
        }
        self.recommended_shards = recommended_shards
        self.echo = echo
        self.echoed = 0  # events sent back to the bot about its own doings
        self.rate_limits = rate_limits
        self.rate_scale = rate_scale
        self.throttled: list[RestCall] = []  # calls answered 429
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}  # bucket -> (reset, used)
        self._holds: list[tuple[str, str, asyncio.Event]] = []
        self._echoes: set[asyncio.Future[None]] = set()
        self._guild_keys = itertools.count(220_000_000_000)
        self.api_base = ""
        self.gateway_url = ""
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self._seq = 0
        self._connections: list[Connection] = []
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._refusals: list[tuple[str, str, int, str]] = []
        #: interactions endpoints taking turns (a load balancer); empty: the gateway
        self.endpoints: list[str] = []
        self._signing_key: Any = None
        self._turn = itertools.count()
        #: attachment id -> (file name, content) served at the fake CDN's URL
        self.uploads: dict[str, tuple[str, bytes]] = {}
        self.cdn_base = ""
        #: interaction id -> (endpoint URL, status, body) of what the endpoint answered
        self.endpoint_answers: dict[str, tuple[str, int, bytes]] = {}
        self._acknowledged: set[str] = set()  # tokens of interactions with their callback

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> tuple[str, str]:
        """Listen on an ephemeral port; return (api_base, gateway_url)."""
        self._changed = asyncio.Event()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{id}/{filename}", self._cdn)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.api_base = f"http://{self.host}:{port}/api/v10"
        self.cdn_base = f"http://{self.host}:{port}/attachments"
        self.gateway_url = f"ws://{self.host}:{port}/gateway"
        return self.api_base, self.gateway_url

    async def stop(self) -> None:
        """Close the gateway sockets and the server."""
        for hold in self._holds:
            hold[2].set()
        for conn in list(self._connections):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway socket as Discord does on an error (the bot reconnects)."""
        for conn in list(self._connections):
            await conn.ws.close(code=code)

    def refuse(self, method: str, fragment: str, status: int = 400, message: str = "") -> None:
        """Answer every later ``method`` call whose path contains ``fragment`` with an error."""
        self._refusals.append((method, fragment, status, message or "Invalid Form Body"))

    def hold(self, method: str, fragment: str) -> asyncio.Event:
        """Stall later ``method`` calls whose path contains ``fragment`` until the event is set.

        The call is recorded when it arrives; it is answered once released.
        """
        release = asyncio.Event()
        self._holds.append((method, fragment, release))
        return release

    def limit_rates(self, on: bool = True, *, scale: float | None = None) -> None:
        """Switch Discord's rate limits on or off (``scale`` shortens their windows)."""
        self.rate_limits = on
        if scale is not None:
            self.rate_scale = scale
        self._windows.clear()

    def new_id(self) -> int:
        """A fresh snowflake."""
        return next(self._ids)

    def add_guild(
        self, *, channels: int = 1, shard: int = 0, shard_count: int = 1, name: str | None = None
    ) -> Guild:
        """A new guild with ``channels`` text channels, on ``shard`` of ``shard_count``.

        A bot already connected does not see it (Discord would send GUILD_CREATE on join;
        the tests add guilds before the bots start).
        """
        key = next(self._guild_keys)
        while key % shard_count != shard:
            key = next(self._guild_keys)
        guild_id = (key << 22) + 1
        guild = Guild(
            guild_id,
            name or f"Guild {len(self.guilds) + 1}",
            [(self.new_id(), f"qa-{i + 1}") for i in range(channels)],
        )
        self.guilds[guild_id] = guild
        return guild

    def guild_of(self, channel_id: int | str) -> int | None:
        """The guild a channel belongs to (None: a DM channel)."""
        channel = int(channel_id)
        for guild in self.guilds.values():
            if any(cid == channel for cid, _ in guild.channels):
                return guild.id
        return None

    def _touch(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- waiting -----------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every REST call / change)."""
        assert self._changed is not None, "server not started"
        async with asyncio.timeout(timeout):
            while True:
                result = condition()
                if result:
                    return result
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_call(
        self, predicate: Callable[[RestCall], bool], timeout: float = 10.0, *, start: int = 0
    ) -> RestCall:
        """The first REST call (from index ``start``) matching ``predicate``."""

        def find() -> RestCall | None:
            return next((c for c in self.calls[start:] if predicate(c)), None)

        return await self.wait_until(find, timeout)  # type: ignore[no-any-return]

    def calls_to(self, method: str, fragment: str = "") -> list[RestCall]:
        """Recorded calls with this method whose path contains ``fragment``."""
        return [c for c in self.calls if c.method == method and fragment in c.path]

    # -- gateway -----------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws)
        self._connections.append(conn)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                op = data.get("op")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    await self._identify(conn, data.get("d") or {})
                elif op == 6:
                    # no resume support: ask for a fresh IDENTIFY
                    await ws.send_str(json.dumps({"op": 9, "d": False}))
        finally:
            if conn in self._connections:
                self._connections.remove(conn)
        return ws

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        conn.intents = int(data.get("intents") or 0)
        shard = data.get("shard")
        if shard is not None:
            conn.shard = (int(shard[0]), int(shard[1]))
        guilds = [g for g in self.guilds.values() if conn.serves(g.id)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": f"fake-session-{self.identified}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [],
        }
        if conn.shard is not None:
            ready["shard"] = list(conn.shard)
        await self._send(conn.ws, "READY", ready)
        for guild in guilds:
            await self._send(conn.ws, "GUILD_CREATE", self.guild_payload(guild.id))
        self.identified += 1
        self.identifies.append(conn.shard)
        self.ready_guilds.append([g.id for g in guilds])
        self._touch()

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self._seq += 1
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway event to the connections of its shard (every one without shards)."""
        guild_id = int(data["guild_id"]) if data.get("guild_id") else None
        targets = [c for c in self._connections if c.serves(guild_id)]
        assert targets, f"no bot connected to the fake gateway serves guild {guild_id}"
        for conn in targets:
            self.deliveries.append((event, conn.shard[0] if conn.shard else None, data["id"]))
            await self._send(conn.ws, event, data)

    def _echo(self, event: str, data: dict[str, Any], guild_intent: int, dm_intent: int) -> None:
        """Tell the bot what it did itself, as Discord does when its intents ask for it."""
        if not self.echo:
            return
        guild_id = int(data["guild_id"]) if data.get("guild_id") else None
        intent = guild_intent if guild_id is not None else dm_intent
        for conn in self._connections:
            if conn.serves(guild_id) and conn.intents & intent and not conn.ws.closed:
                self.echoed += 1
                self._seq += 1
                payload = json.dumps({"op": 0, "t": event, "s": self._seq, "d": data})
                task = asyncio.ensure_future(conn.ws.send_str(payload))
                self._echoes.add(task)
                task.add_done_callback(self._echoes.discard)

    def guild_payload(self, guild_id: int = GUILD_ID) -> dict[str, Any]:
        """The GUILD_CREATE payload of a guild (by default the first test guild)."""
        guild = self.guilds[guild_id]
        channels = [
            {
                "id": str(cid),
                "type": 0,
                "name": name,
                "position": pos,
                "permission_overwrites": [],
                "nsfw": False,
                "topic": None,
                "parent_id": None,
            }
            for pos, (cid, name) in enumerate(guild.channels)
        ]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "owner_id": "1",
            "roles": [
                {
                    "id": str(guild.id),
                    "name": "@everyone",
                    "permissions": "2251799813685247",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                {
                    "id": str(BOT_ROLE_ID),
                    "name": "mschat",
                    "permissions": "0",
                    "position": 1,
                    "color": 0,
                    "hoist": False,
                    "managed": True,
                    "mentionable": True,
                    "flags": 0,
                    "tags": {"bot_id": str(BOT_ID)},
                },
            ],
            "channels": channels,
            "members": [member_payload(self.bot_user)],
            "member_count": 1,
            "emojis": [],
            "stickers": [],
            "features": [],
            "threads": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "voice_states": [],
            "presences": [],
            "large": False,
            "unavailable": False,
            "joined_at": TIMESTAMP,
            "premium_tier": 0,
            "mfa_level": 0,
            "verification_level": 0,
            "explicit_content_filter": 0,
            "default_message_notifications": 0,
            "afk_timeout": 300,
            "system_channel_flags": 0,
            "nsfw_level": 0,
            "preferred_locale": "en-US",
            "premium_progress_bar_enabled": False,
        }

    # -- what tests send ------------------------------------------------------------

    def user(self, user_id: int, name: str | None = None, *, bot: bool = False) -> dict[str, Any]:
        """A (remembered) user object."""
        if user_id not in self.users:
            self.users[user_id] = user_payload(user_id, name or f"user{user_id}", bot=bot)
        return self.users[user_id]

    def dm_channel_id(self, user_id: int) -> int:
        """The DM channel id between the bot and this user (deterministic)."""
        return 800_000_000_000_000_000 + user_id

    async def send_message(
        self,
        user_id: int,
        content: str,
        *,
        channel_id: int = QA_CHANNEL_ID,
        dm: bool = False,
        mention_bot: bool = False,
        mention_role: bool = False,
        mention_everyone: bool = False,
        bot: bool = False,
        files: list[tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        """Dispatch MESSAGE_CREATE from a user (in a guild channel, or a DM), mentioning
        the bot, its role or ``@everyone`` when told, with ``files`` (name, content) as
        its attachments, served by the fake CDN."""
        author = self.user(user_id, bot=bot)
        if mention_bot:
            content = f"<@{BOT_ID}> {content}"
        if mention_role:
            content = f"<@&{BOT_ROLE_ID}> {content}"
        if mention_everyone:
            content = f"@everyone {content}"
        message: dict[str, Any] = {
            "id": str(self.new_id()),
            "channel_id": str(self.dm_channel_id(user_id) if dm else channel_id),
            "author": author,
            "content": content,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": mention_everyone,
            "mentions": [self.bot_user] if mention_bot else [],
            "mention_roles": [str(BOT_ROLE_ID)] if mention_role else [],
            "attachments": [self.upload(name, data) for name, data in files or []],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }
        if not dm:
            guild_id = self.guild_of(channel_id)
            assert guild_id is not None, f"channel {channel_id} is in no guild of the fake"
            message["guild_id"] = str(guild_id)
            message["member"] = member_payload()
        self.messages[int(message["id"])] = message
        typing = {
            "channel_id": message["channel_id"],
            "user_id": str(user_id),
            "timestamp": int(time.time()),
        }
        if not dm:
            typing |= {"guild_id": message["guild_id"], "member": member_payload(author)}
        self._echo("TYPING_START", typing, TYPING, DM_TYPING)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    def upload(self, name: str, data: bytes, content_type: str | None = None) -> dict[str, Any]:
        """An attachment object for ``data``, which the fake CDN then serves."""
        attachment_id = str(self.new_id())
        self.uploads[attachment_id] = (name, data)
        url = f"{self.cdn_base}/{attachment_id}/{name}"
        attachment = {
            "id": attachment_id,
            "filename": name,
            "size": len(data),
            "url": url,
            "proxy_url": url,
        }
        if content_type:
            attachment["content_type"] = content_type
        return attachment

    async def _cdn(self, request: web.Request) -> web.Response:
        """GET of an uploaded attachment, as Discord's CDN serves it."""
        found = self.uploads.get(request.match_info["id"])
        if found is None or found[0] != request.match_info["filename"]:
            return web.Response(status=404, text="not found")
        return web.Response(body=found[1], content_type="application/octet-stream")

    def _interaction(
        self, user_id: int, kind: int, data: dict[str, Any], *, dm: bool, channel_id: int
    ) -> dict[str, Any]:
        author = self.user(user_id)
        interaction: dict[str, Any] = {
            "id": str(self.new_id()),
            "application_id": str(APP_ID),
            "type": kind,
            "token": f"itoken-{self.new_id()}",
            "version": 1,
            "data": data,
            "locale": "en-US",
            "app_permissions": "2251799813685247",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if dm:
            cid = self.dm_channel_id(user_id)
            interaction["channel_id"] = str(cid)
            interaction["channel"] = {"id": str(cid), "type": 1, "recipients": [author]}
            interaction["user"] = author
            interaction["context"] = 1
            interaction["authorizing_integration_owners"] = {"0": "0"}
        else:
            # a channel of no known guild is taken as the first test guild's
            guild_id = str(self.guild_of(channel_id) or GUILD_ID)
            interaction["guild_id"] = guild_id
            interaction["guild_locale"] = "en-US"
            interaction["channel_id"] = str(channel_id)
            interaction["channel"] = {
                "id": str(channel_id),
                "type": 0,
                "guild_id": guild_id,
                "name": "qa",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            }
            interaction["member"] = member_payload(author)
            interaction["context"] = 0
            interaction["authorizing_integration_owners"] = {"0": guild_id}
        self.interactions[interaction["token"]] = interaction
        return interaction

    def _command(self, name: str, kind: int) -> dict[str, Any]:
        for scope, commands in self.commands.items():
            for command in commands:
                if command["name"] == name and command.get("type", 1) == kind:
                    data = {"id": command["id"], "name": name, "type": kind}
                    if scope != "global":
                        data["guild_id"] = scope
                    return data
        raise AssertionError(f"command {name!r} was never registered: {list(self.commands)}")

    async def slash(
        self,
        user_id: int,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dm: bool = False,
        channel_id: int = QA_CHANNEL_ID,
    ) -> dict[str, Any]:
        """Dispatch a slash command interaction (option types from the registered command;
        an attachment option's value is (name, content), uploaded to the fake CDN)."""
        data = self._command(name, 1)
        registered = next(c for cs in self.commands.values() for c in cs if c["id"] == data["id"])
        types = {o["name"]: o["type"] for o in registered.get("options", [])}
        data["options"] = []
        for key, value in (options or {}).items():
            if types.get(key) == 11:  # ATTACHMENT: the id, and the object under "resolved"
                attachment = self.upload(*value)
                resolved = data.setdefault("resolved", {}).setdefault("attachments", {})
                resolved[attachment["id"]] = attachment
                value = attachment["id"]
            data["options"].append({"name": key, "type": types.get(key, 3), "value": value})
        interaction = self._interaction(user_id, 2, data, dm=dm, channel_id=channel_id)
        await self._deliver(interaction)
        return interaction

    async def message_command(
        self, user_id: int, name: str, target: dict[str, Any], *, dm: bool = False
    ) -> dict[str, Any]:
        """Dispatch a message context-menu command on ``target``."""
        data = self._command(name, 3)
        data["target_id"] = target["id"]
        data["resolved"] = {"messages": {target["id"]: target}}
        channel_id = int(target["channel_id"])
        interaction = self._interaction(user_id, 2, data, dm=dm, channel_id=channel_id)
        await self._deliver(interaction)
        return interaction

    async def click(
        self,
        user_id: int,
        message: dict[str, Any] | int,
        custom_id: str,
        values: list[str] | None = None,
    ) -> dict[str, Any]:
        """Dispatch a component interaction on a stored message (button, or select with values)."""
        if isinstance(message, int):
            message = self.messages[message]
        component = find_component(message, custom_id)
        assert component is not None, f"no component {custom_id!r} on message {message['id']}"
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = values
        channel_id = int(message.get("channel_id") or QA_CHANNEL_ID)
        dm = self.guild_of(channel_id) is None
        interaction = self._interaction(user_id, 3, data, dm=dm, channel_id=channel_id)
        interaction["message"] = message
        self.originals[interaction["token"]] = int(message["id"])
        await self._deliver(interaction)
        return interaction

    async def submit_modal(
        self,
        user_id: int,
        modal_custom_id: str,
        fields: dict[str, str],
        *,
        dm: bool = False,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Dispatch a MODAL_SUBMIT with text-input values by their custom_id.

        ``message``: the message whose button opened the modal (Discord sends it
        along; a deferred update then edits it).
        """
        data = {
            "custom_id": modal_custom_id,
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
                for key, value in fields.items()
            ],
        }
        channel_id = int(message["channel_id"]) if message else QA_CHANNEL_ID
        interaction = self._interaction(user_id, 5, data, dm=dm, channel_id=channel_id)
        if message is not None:
            interaction["message"] = message
            self.originals[interaction["token"]] = int(message["id"])
        await self._deliver(interaction)
        return interaction

    # -- interactions over HTTP (an "Interactions Endpoint URL") ---------------------------

    def deliver_over_http(self, endpoints: list[str], signing_key: Any) -> None:
        """Send interactions as signed POSTs to ``endpoints`` in turn instead of the gateway.

        ``signing_key``: a PyNaCl ``SigningKey``, standing for the application's key.
        """
        self.endpoints = list(endpoints)
        self._signing_key = signing_key

    def signed_headers(
        self, body: bytes, *, timestamp: int | None = None, key: Any = None
    ) -> dict[str, str]:
        """The headers Discord signs a POST of ``body`` with (``key`` overrides the app's)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = (key or self._signing_key).sign(stamp.encode() + body).signature
        return {
            "Content-Type": "application/json",
            "X-Signature-Ed25519": signature.hex(),
            "X-Signature-Timestamp": stamp,
        }

    async def post_signed(
        self, url: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """POST ``body`` to an endpoint as Discord does (signed unless ``headers`` are given)."""
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers or self.signed_headers(body)) as response,
        ):
            return response.status, await response.read()

    async def _deliver(self, interaction: dict[str, Any]) -> None:
        """An interaction reaches the bot: over the gateway, or POSTed to the next endpoint."""
        if not self.endpoints:
            await self.dispatch("INTERACTION_CREATE", interaction)
            return
        url = self.endpoints[next(self._turn) % len(self.endpoints)]
        self.deliveries.append(("HTTP", None, interaction["id"]))
        status, body = await self.post_signed(url, json.dumps(interaction).encode())
        self.endpoint_answers[interaction["id"]] = (url, status, body)

    # -- inspecting what the bot did ---------------------------------------------------

    def bot_messages(self, channel_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot created (channel messages and webhook messages), oldest first."""
        found = [m for m in self.messages.values() if m["author"]["id"] == str(BOT_ID)]
        if channel_id is not None:
            found = [m for m in found if m["channel_id"] == str(channel_id)]
        return sorted(found, key=lambda m: int(m["id"]))

    def replies_to(self, message_id: int | str) -> list[dict[str, Any]]:
        """Bot messages that reply to ``message_id`` (a split answer has several)."""
        found = [self.messages.get(i) for i in self._replies.get(str(message_id), [])]
        return [m for m in found if m is not None]

    def interaction_messages(self, interaction: dict[str, Any]) -> list[dict[str, Any]]:
        """@original plus followups of an interaction, oldest first."""
        token = interaction["token"]
        return [m for m in self.bot_messages() if m.get("_token") == token]

    def callbacks(self, interaction: dict[str, Any]) -> list[RestCall]:
        """The interaction's callback calls (its acknowledgement)."""
        return [c for c in self.calls if c.path.startswith(f"/interactions/{interaction['id']}/")]

    # -- REST ------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        files: dict[str, bytes] = {}
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for key, value in form.items():
                if key == "payload_json":
                    body = json.loads(str(value))
                elif hasattr(value, "file"):
                    files[value.filename] = value.file.read()
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        call = RestCall(request.method, path, dict(request.query), body, files)
        self.calls.append(call)
        response: web.Response | None = None
        try:
            for method, fragment, release in self._holds:
                if call.method == method and fragment in path:
                    await release.wait()
            # interaction callbacks and webhooks are authorised by their token instead
            token_auth = path.startswith(("/interactions/", "/webhooks/"))
            if not token_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                response = _json({"message": "401: Unauthorized", "code": 0}, 401)
                return response
            headers, refused = self._count(call) if self.rate_limits else ({}, None)
            if refused is not None:
                response = refused
                self.throttled.append(call)
                return response
            for method, fragment, status, message in self._refusals:
                if call.method == method and fragment in path:
                    response = _json({"message": message, "code": 50035}, status)
                    return response
            response = self._route(call)
            response.headers.update(headers)
            return response
        finally:
            call.status = response.status if response is not None else 500
            self._touch()

    # -- rate limits -------------------------------------------------------------------

    @staticmethod
    def limit_of(method: str, path: str) -> tuple[Limit, str] | None:
        """The limit a call counts against and its channel, if it is a limited route."""
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "channels" or parts[2] != "messages":
            return None
        channel = parts[1]
        if len(parts) >= 6 and parts[4] == "reactions":
            return REACTIONS, channel
        if len(parts) == 3 and method == "POST":
            return MESSAGES, channel
        if len(parts) == 4 and method == "PATCH":
            return MESSAGES, channel
        if len(parts) == 4 and method == "DELETE":
            return DELETES, channel
        return None

    def _count(self, call: RestCall) -> tuple[dict[str, str], web.Response | None]:
        """Count a call in its bucket: its X-RateLimit headers, and the 429 when over the limit."""
        found = self.limit_of(call.method, call.path)
        if found is None:
            return {}, None
        limit, channel = found
        call.bucket = f"{limit.bucket}:{channel}"
        now = time.monotonic()
        per = limit.per * self.rate_scale
        reset, used = self._windows.get((limit.bucket, channel), (0.0, 0))
        if now >= reset:
            reset, used = now + per, 0
        after = max(reset - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(limit.limit),
            "X-RateLimit-Reset": f"{time.time() + after:.3f}",
            "X-RateLimit-Reset-After": f"{after:.3f}",
            "X-RateLimit-Bucket": limit.hash,
        }
        if used >= limit.limit:
            headers |= {
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Scope": "user",
                "Retry-After": str(max(1, round(after))),
                # discord.py retries a 429 only when it came through Discord's proxy
                "Via": "1.1 google",
            }
            body = {
                "message": "You are being rate limited.",
                "retry_after": round(after, 3),
                "global": False,
            }
            response = _json(body, 429)
            response.headers.update(headers)
            return headers, response
        self._windows[(limit.bucket, channel)] = (reset, used + 1)
        headers["X-RateLimit-Remaining"] = str(limit.limit - used - 1)
        return headers, None

    def _route(self, call: RestCall) -> web.Response:
        parts = [unquote(p) for p in call.path.strip("/").split("/")]
        method = call.method
        if parts == ["users", "@me"]:
            return _json(self.bot_user)
        if parts == ["oauth2", "applications", "@me"]:
            return _json(self._app_info())
        if parts == ["gateway", "bot"]:
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": self.recommended_shards,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if parts[0] == "applications" and parts[-1] == "commands" and method == "PUT":
            scope = "global" if len(parts) == 3 else parts[3]
            registered = []
            for command in call.body or []:
                registered.append(
                    {
                        "description": "",
                        **command,
                        "id": str(self.new_id()),
                        "application_id": str(APP_ID),
                        "version": "1",
                        "type": command.get("type", 1),
                    }
                )
            self.commands[scope] = registered
            return _json(registered)
        if parts[0] == "channels" and len(parts) >= 3 and parts[2] == "messages":
            return self._channel_messages(call, parts)
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(call, parts[2])
        if parts[0] == "webhooks":
            return self._webhook(call, parts)
        return _json({"message": "404: Not Found (fake)", "code": 0}, 404)

    def _app_info(self) -> dict[str, Any]:
        return {
            "id": str(APP_ID),
            "name": "mschat",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "00",
            "owner": user_payload(1, "owner"),
            "flags": 0,
            "rpc_origins": [],
            "team": None,
            "summary": "",
            "interactions_endpoint_url": None,
        }

    def _new_message(
        self, channel_id: str, body: dict[str, Any], files: dict[str, bytes], **extra: Any
    ) -> dict[str, Any]:
        message_id = self.new_id()
        message = {
            "id": str(message_id),
            "channel_id": channel_id,
            "author": self.bot_user,
            "content": body.get("content") or "",
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 19 if body.get("message_reference") else 0,
            "flags": body.get("flags") or 0,
            "allowed_mentions": body.get("allowed_mentions"),
            **extra,
        }
        if body.get("message_reference"):
            ref = body["message_reference"]
            message["message_reference"] = {
                k: str(v) if k.endswith("_id") else v for k, v in ref.items()
            }
            if message["author"]["id"] == str(BOT_ID) and ref.get("message_id"):
                self._replies.setdefault(str(ref["message_id"]), []).append(message_id)
        self._attach(message, body, files)
        self.messages[message_id] = message
        return message

    def _attach(
        self, message: dict[str, Any], body: dict[str, Any], files: dict[str, bytes]
    ) -> None:
        if not files:
            return
        stored = self.files.setdefault(int(message["id"]), {})
        message["attachments"] = []
        for name, content in files.items():
            stored[name] = content
            message["attachments"].append(
                {
                    "id": str(self.new_id()),
                    "filename": name,
                    "size": len(content),
                    "url": f"{self.api_base}/files/{name}",
                    "proxy_url": "",
                }
            )

    def _edit(self, message: dict[str, Any], call: RestCall) -> dict[str, Any]:
        body = call.body or {}
        for key in ("content", "embeds", "components", "flags", "allowed_mentions"):
            if key in body:
                message[key] = body[key] if body[key] is not None else message.get(key)
        if "content" in body and body["content"] is None:
            message["content"] = ""
        message["flags"] = (message.get("flags") or 0) & ~LOADING
        self._attach(message, body, call.files)
        message["edited_timestamp"] = TIMESTAMP
        self.edits[int(message["id"])] = self.edits.get(int(message["id"]), 0) + 1
        return message

    def _channel_messages(self, call: RestCall, parts: list[str]) -> web.Response:
        channel_id = parts[1]
        if len(parts) == 3 and call.method == "POST":
            extra: dict[str, Any] = {}
            guild_id = self.guild_of(channel_id)
            if guild_id is not None:
                extra["guild_id"] = str(guild_id)
            created = self._new_message(channel_id, call.body or {}, call.files, **extra)
            self._echo("MESSAGE_CREATE", created, GUILD_MESSAGES, DM_MESSAGES)
            return _json(created)
        message_id = int(parts[3])
        if len(parts) == 4:
            message = self.messages.get(message_id)
            if message is None:
                return _json({"message": "Unknown Message", "code": 10008}, 404)
            if call.method == "PATCH":
                edited = self._edit(message, call)
                self._echo("MESSAGE_UPDATE", edited, GUILD_MESSAGES, DM_MESSAGES)
                return _json(edited)
            if call.method == "DELETE":
                self.messages.pop(message_id, None)
                return web.Response(status=204)
            return _json(message)
        if len(parts) >= 6 and parts[4] == "reactions":
            emoji = parts[5]
            current = self.reactions.setdefault(message_id, [])
            if call.method == "PUT" and emoji not in current:
                current.append(emoji)
            elif call.method == "DELETE" and emoji in current:
                current.remove(emoji)
            reaction: dict[str, Any] = {
                "user_id": str(BOT_ID),
                "channel_id": channel_id,
                "message_id": str(message_id),
                "emoji": {"id": None, "name": emoji},
                "type": 0,
                "burst": False,
            }
            guild_id = self.guild_of(channel_id)
            if guild_id is not None:
                reaction |= {"guild_id": str(guild_id), "member": member_payload(self.bot_user)}
            event = "MESSAGE_REACTION_ADD" if call.method == "PUT" else "MESSAGE_REACTION_REMOVE"
            self._echo(event, reaction, REACTIONS_INTENT, DM_REACTIONS)
            return web.Response(status=204)
        return _json({"message": "404: Not Found (fake)", "code": 0}, 404)

    def _callback(self, call: RestCall, token: str) -> web.Response:
        interaction = self.interactions.get(token)
        if interaction is None:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if token in self._acknowledged:
            # an interaction has one initial response (a replayed one gets no second)
            message = "Interaction has already been acknowledged."
            return _json({"message": message, "code": 40060}, 400)
        self._acknowledged.add(token)
        body = call.body or {}
        kind = body.get("type")
        data = body.get("data") or {}
        channel_id = interaction.get("channel_id", "0")
        result: dict[str, Any] = {
            "interaction": {
                "id": interaction["id"],
                "type": interaction["type"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool((data.get("flags") or 0) & EPHEMERAL),
            },
            "resource": {"type": kind},
        }
        if kind in (4, 5):
            flags = (data.get("flags") or 0) | (LOADING if kind == 5 else 0)
            message = self._new_message(
                channel_id,
                {**data, "flags": flags},
                call.files,
                _token=token,
                interaction_metadata={
                    "id": interaction["id"],
                    "type": interaction["type"],
                    "user": (interaction.get("member") or interaction)["user"],
                },
            )
            self.originals[token] = int(message["id"])
            result["interaction"]["response_message_id"] = message["id"]
            result["resource"]["message"] = message
        elif kind == 7 and token in self.originals:
            message = self.messages[self.originals[token]]
            self._edit(message, RestCall("PATCH", call.path, {}, data, call.files))
            result["resource"]["message"] = message
        return _json(result)

    def _webhook(self, call: RestCall, parts: list[str]) -> web.Response:
        # /webhooks/{app}/{token}[/messages/{id}]
        token = parts[2]
        interaction = self.interactions.get(token, {})
        if len(parts) == 3 and call.method == "POST":
            message = self._new_message(
                interaction.get("channel_id", "0"), call.body or {}, call.files, _token=token
            )
            return _json(message)
        if len(parts) == 5 and parts[3] == "messages":
            ref = parts[4]
            message_id = self.originals.get(token) if ref == "@original" else int(ref)
            message = self.messages.get(message_id or 0)
            if message is None:
                return _json({"message": "Unknown Message", "code": 10008}, 404)
            if call.method == "PATCH":
                return _json(self._edit(message, call))
            if call.method == "DELETE":
                self.messages.pop(int(message["id"]), None)
                return web.Response(status=204)
            return _json(message)
        return _json({"message": "404: Not Found (fake)", "code": 0}, 404)


def walk_components(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Every button/select of a message (rows flattened)."""
    found: list[dict[str, Any]] = []
    stack = list(message.get("components") or [])
    while stack:
        component = stack.pop(0)
        if component.get("type") == 1 or "components" in component:
            stack[:0] = component.get("components", [])
        else:
            found.append(component)
    return found


def find_component(message: dict[str, Any], custom_id: str) -> dict[str, Any] | None:
    """The component with this custom_id, if the message has it."""
    return next((c for c in walk_components(message) if c.get("custom_id") == custom_id), None)


async def _serve_forever(port: int, token: str) -> None:
    async with FakeDiscord(port=port, token=token) as fake:
        print(f"MSCHAT_DISCORD_API_BASE={fake.api_base}", flush=True)
        print(f"MSCHAT_DISCORD_GATEWAY_URL={fake.gateway_url}", flush=True)
        print(f"MSCHAT_DISCORD_TOKEN={fake.token}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    """Serve the fake until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description="A loopback fake Discord (REST + gateway).")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--token", default="test-token")
    args = parser.parse_args()
    try:
        asyncio.run(_serve_forever(args.port, args.token))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
