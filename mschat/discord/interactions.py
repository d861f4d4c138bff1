"""Interactions as signed HTTP POSTs: the endpoint of Discord's "Interactions Endpoint URL".

Discord signs every POST with the application's Ed25519 key over
``X-Signature-Timestamp`` + the raw body. A request with a bad or missing
signature, or a timestamp more than ``MAX_SKEW`` seconds off, gets 401; a PING
gets its PONG in the response body. Everything else is handed to discord.py
exactly as a gateway ``INTERACTION_CREATE`` would be, so the bot's commands,
components and modals run unchanged. They acknowledge through the callback
endpoint (as from the gateway); Discord's rule for interactions received over
HTTP is then to answer the POST with 202 and no body, which the endpoint does as
soon as that initial response has gone out. Followups and edits use REST as usual.

Nothing here is per process: several endpoints over one database behind a load
balancer serve the same bot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from mschat.core.errors import ConfigError
from mschat.visible import visible

if TYPE_CHECKING:
    from mschat.discord.bot import MschatBot

log = logging.getLogger("mschat.discord.interactions")

#: seconds a request's timestamp may differ from our clock (replays older than that fail)
MAX_SKEW = 300
#: bytes of the largest body taken (Discord's interactions are a few KiB)
MAX_BODY = 256 * 1024
#: seconds Discord waits for the initial response before it gives up on an interaction
ACK_DEADLINE = 3.0
PING, PONG = 1, 1
KEY_HINT = "Developer Portal → your application → General Information → Public Key"


class Verifier:
    """Checks Discord's Ed25519 signature of a request against the application's public key."""

    def __init__(self, public_key: str) -> None:
        from nacl.exceptions import CryptoError
        from nacl.signing import VerifyKey

        try:
            self._key = VerifyKey(bytes.fromhex(public_key))
        except (ValueError, CryptoError):
            raise ConfigError("discord.public_key is not an Ed25519 key", hint=KEY_HINT) from None

    def refusal(
        self, signature: str | None, timestamp: str | None, body: bytes, now: float
    ) -> str | None:
        """Why the request is refused (one line), or None when it is Discord's and fresh."""
        from nacl.exceptions import BadSignatureError

        if not signature or not timestamp:
            return "missing signature headers"
        try:
            raw = bytes.fromhex(signature)
            sent_at = int(timestamp)
        except ValueError:
            return "malformed signature headers"
        if len(raw) != 64:
            return "malformed signature headers"
        if abs(now - sent_at) > MAX_SKEW:
            return "stale timestamp"
        try:
            self._key.verify(timestamp.encode() + body, raw)
        except BadSignatureError:
            return "bad signature"
        return None


class Acknowledgements(AsyncWebhookAdapter):
    """discord.py's webhook adapter, telling the endpoint when an interaction's initial
    response (its callback) has been sent.

    Installed in the context the interaction is dispatched from, so the tasks
    discord.py starts for it (and only those) use it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiting: dict[int, asyncio.Future[bool]] = {}

    def expect(self, interaction_id: int) -> asyncio.Future[bool] | None:
        """A future set to whether the interaction's callback succeeded (None: this
        interaction is being handled already)."""
        if interaction_id in self._waiting:
            return None
        future = asyncio.get_running_loop().create_future()
        self._waiting[interaction_id] = future
        return future

    def forget(self, interaction_id: int) -> None:
        """Stop waiting for this interaction."""
        self._waiting.pop(interaction_id, None)

    def create_interaction_response(  # type: ignore[override]
        self, interaction_id: int, token: str, **options: Any
    ) -> Coroutine[Any, Any, Any]:
        """discord.py's callback request, reporting its outcome."""
        request = super().create_interaction_response(interaction_id, token, **options)
        return self._reported(interaction_id, request)

    async def _reported(self, interaction_id: int, request: Any) -> Any:
        ok = False
        try:
            result = await request
            ok = True
            return result
        finally:
            future = self._waiting.pop(interaction_id, None)
            if future is not None and not future.done():
                future.set_result(ok)


def _reply(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


class Endpoint:
    """The HTTP server receiving Discord's signed interaction POSTs for one bot."""

    def __init__(self, bot: MschatBot, listen: str, public_key: str) -> None:
        self.bot = bot
        self.listen = listen
        self.verifier = Verifier(public_key)
        self.acks = Acknowledgements()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Listen on ``listen``; return the base URL."""
        host, _, port = self.listen.rpartition(":")
        host = host.strip("[]")
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{path:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=ACK_DEADLINE + 1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, int(port))
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                f"cannot listen on {self.listen}: {exc.strerror or exc}",
                hint="discord.interactions_listen takes HOST:PORT",
            ) from None
        bound_host, bound_port = self._runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        log.info("interactions endpoint listening on %s", self.url)
        return self.url

    async def close(self) -> None:
        """Stop listening; requests in flight get their answer first."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return _reply(405, "POST interactions here")
        if (request.content_length or 0) > MAX_BODY:
            return _reply(413, "body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _reply(413, "body too large")
        refusal = self.verifier.refusal(
            request.headers.get("X-Signature-Ed25519"),
            request.headers.get("X-Signature-Timestamp"),
            body,
            time.time(),
        )
        if refusal is not None:
            log.info("interaction refused: %s", refusal)
            return _reply(401, refusal)
        try:
            payload = json.loads(body)
            kind, interaction_id = payload["type"], int(payload["id"])
            if not isinstance(kind, int) or not isinstance(payload.get("token", ""), str):
                raise ValueError(kind)
        except (ValueError, TypeError, KeyError):
            return _reply(400, "not an interaction")
        if kind == PING:
            return web.json_response({"type": PONG})
        return await self._dispatch(payload, interaction_id)

    async def _dispatch(self, payload: dict[str, Any], interaction_id: int) -> web.Response:
        """Hand the interaction to discord.py; answer once its initial response went out."""
        acknowledged = self.acks.expect(interaction_id)
        if acknowledged is None:  # the same POST twice at once: Discord takes one response
            return _reply(409, "interaction already being handled")
        installed = async_context.set(self.acks)
        try:
            # as the gateway's INTERACTION_CREATE: the tasks it starts inherit the adapter
            self.bot._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        except Exception as exc:
            self.acks.forget(interaction_id)
            log.warning("malformed interaction %s: %s", interaction_id, visible(repr(exc)))
            return _reply(400, "malformed interaction")
        finally:
            async_context.reset(installed)
        try:
            async with asyncio.timeout(ACK_DEADLINE):
                ok = await acknowledged
        except TimeoutError:
            self.acks.forget(interaction_id)
            log.warning("interaction %s got no initial response in time", interaction_id)
            return _reply(503, "no initial response in time")
        if not ok:
            return _reply(502, "Discord refused the initial response")
        return web.Response(status=202)


def check_endpoint_config(config: Any, *, gateway: bool) -> None:
    """Refuse an endpoint without its key, and ``--no-gateway`` without an endpoint."""
    listen = config.get("discord", "interactions_listen")
    if not gateway and listen is None:
        raise ConfigError(
            "--no-gateway serves only HTTP interactions, and discord.interactions_listen is unset",
            hint="set discord.interactions_listen (e.g. 127.0.0.1:5001) and discord.public_key",
        )
    if listen is not None and config.get("discord", "public_key") is None:
        raise ConfigError("discord.interactions_listen needs discord.public_key", hint=KEY_HINT)


def endpoint_of(bot: MschatBot) -> Endpoint | None:
    """The bot's interactions endpoint per ``discord.interactions_listen``, or None."""
    config = bot.services.config
    listen = config.get("discord", "interactions_listen")
    if listen is None:
        return None
    return Endpoint(bot, listen, config.get("discord", "public_key"))
