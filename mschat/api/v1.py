"""OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models``.

The request's ``user`` names the mschat user. With the ``X-Mschat-Session``
header only the trailing user message is appended to that session (it holds
the history); without it a new session is made from the supplied messages and
its id comes back in the same header.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from mschat.api import fields
from mschat.api.context import services_of, settings_of
from mschat.api.errors import ApiError, bad_request, from_mschat, json_response
from mschat.api.idempotent import once
from mschat.api.replies import WAITING, EventStream, Reply, first_event
from mschat.api.shapes import (
    SESSION_HEADER,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    ModelCard,
    ModelList,
    SessionHeader,
)
from mschat.core import eligibility
from mschat.core.errors import MschatError, NotFound
from mschat.core.events import Event, Queued, WaitingForTurn
from mschat.core.models import Origin
from mschat.core.titles import make_title
from mschat.core.tokens import estimate_tokens

#: an image given inline: ``data:image/png;base64,...``
DATA_URL = re.compile(r"data:image/([a-z0-9.+-]+);base64,(.*)", re.DOTALL)

#: OpenAI's roles as mschat stores them
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


#: a turn as the core imports it: role, text and its files (see ``image_files``)
Turn = tuple[str, str, list[tuple[str, bytes] | str]]


def image_files(message: ChatMessage) -> list[tuple[str, bytes] | str]:
    """A message's images as the core takes files: a data URL decoded, another URL as is."""
    files: list[tuple[str, bytes] | str] = []
    for index, image in enumerate(message.images, 1):
        match = DATA_URL.fullmatch(image.url)
        if match is None:
            files.append(image.url)
            continue
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("messages", "an image's data URL is not valid base64") from None
        files.append((f"image-{index}.{match.group(1)}", data))
    return files


def split_messages(messages: list[ChatMessage]) -> tuple[str | None, list[Turn], Turn]:
    """(system text, earlier turns, the trailing user turn) of a request's messages."""
    system: list[str] = []
    turns: list[Turn] = []
    for message in messages:
        role = ROLES[message.role]
        if role == "system":
            if message.content.strip():
                system.append(message.content)
        else:
            turns.append((role, message.content, image_files(message) if role == "user" else []))
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise bad_request("messages", "the last message must be a non-empty user message")
    return ("\n\n".join(system) or None), turns[:-1], turns[-1]


def _usage(reply: Reply) -> CompletionUsage:
    """Usage as OpenAI reports it; estimates fill in what the provider did not say."""
    usage = reply.usage
    prompt = usage.prompt_tokens if usage and usage.prompt_tokens is not None else None
    completion = usage.completion_tokens if usage and usage.completion_tokens is not None else None
    prompt = prompt if prompt is not None else reply.prompt_estimate
    completion = completion if completion is not None else estimate_tokens(reply.text)
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _headers(reply: Reply) -> dict[str, str]:
    return {SESSION_HEADER: str(reply.session_id)} if reply.session_id is not None else {}


async def _completion(reply: Reply) -> web.StreamResponse:
    """The answer of a non-streamed request: a completion, or the reply's error."""
    if reply.error is not None:
        return reply.error.with_headers(_headers(reply)).response()
    completion = ChatCompletion(
        id=f"chatcmpl-{reply.message_id}",
        created=reply.created,
        model=reply.model,
        choices=[
            Choice(
                message=AssistantMessage(content=reply.text),
                finish_reason=reply.finish_reason or "stop",
            )
        ],
        usage=_usage(reply),
    )
    return json_response(completion, headers=_headers(reply))


class ChunkStream:
    """OpenAI's chunk stream of one reply: role, content deltas, finish, optional
    usage, ``[DONE]``."""

    def __init__(self, request: web.Request, reply: Reply, include_usage: bool) -> None:
        self.stream = EventStream(request, _headers(reply))
        self.reply = reply
        self.include_usage = include_usage

    def chunk(self, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        """One chunk of this reply."""
        reply = self.reply
        return ChatCompletionChunk(
            id=f"chatcmpl-{reply.message_id}",
            created=reply.created,
            model=reply.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )

    async def send(self, chunk: ChatCompletionChunk) -> None:
        """Send a chunk (with ``usage``, null but the last, when usage was asked for)."""
        await self.stream.send(
            chunk.model_dump(mode="json", exclude=None if self.include_usage else {"usage"})
        )

    async def start(self) -> None:
        """The response's headers and the chunk naming the role."""
        await self.stream.open()
        await self.send(self.chunk(Delta(role="assistant", content="")))

    async def end(self) -> web.StreamResponse:
        """The finish (or the error), the usage if asked for, then ``[DONE]``."""
        reply = self.reply
        if reply.error is not None:
            await self.stream.send(reply.error.body())
        else:
            await self.send(self.chunk(Delta(), reply.finish_reason or "stop"))
            if self.include_usage:
                last = self.chunk(Delta())
                last.choices = []
                last.usage = _usage(reply)
                await self.send(last)
        await self.stream.send("[DONE]")
        return await self.stream.close()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: answer in a new or the header's session."""
    manager = services_of(request).manager
    body = await fields.read_json(request)
    asked = fields.validate(ChatCompletionRequest, body)
    session_id = fields.headers(request, SessionHeader).session
    system, earlier, (_, question, files) = split_messages(asked.messages)
    model = asked.model.strip() if asked.model and asked.model.strip() else None
    include_usage = bool(asked.stream_options and asked.stream_options.include_usage)
    options: dict[str, Any] = {
        "temperature": asked.temperature,
        "max_tokens": asked.max_completion_tokens or asked.max_tokens,
    }
    if model is not None:
        try:
            model = (await manager.resolve_model(model)).full_name
        except NotFound as error:
            raise ApiError(404, str(error), code="model_not_found", param="model") from None
    user = await manager.user("api", asked.user or settings_of(request).default_user)
    eligibility.check_may_route(user)

    async def events() -> tuple[Event | None, AsyncIterator[Event], int]:
        """Start the answer in the header's session or a new one made from the request."""
        if session_id is not None:
            asking = manager.ask(
                user,
                question,
                session_id=session_id,
                origin=Origin.API,
                model=model,
                system=system,
                attachments=files,
                **options,
            )
            try:
                return await first_event(asking), asking, session_id
            except MschatError as error:
                raise from_mschat(error, param=SESSION_HEADER).with_headers(
                    {SESSION_HEADER: str(session_id)}
                ) from None
        session = await manager.create_session(
            user, origin=Origin.API, title=make_title(question), model=model, system_msg=system
        )
        try:
            if earlier:
                await manager.import_messages(user, session.id, earlier)
            asking = manager.ask(
                user,
                question,
                session_id=session.id,
                origin=Origin.API,
                attachments=files,
                **options,
            )
            return await first_event(asking), asking, session.id
        except MschatError as error:
            # refused before anything was asked (rate limit, ignored user): leave no trace
            await manager.remove_session(user, session.id)
            raise from_mschat(error) from None

    async def replay(reply: Reply) -> web.StreamResponse:
        if not asked.stream:
            return await _completion(reply)
        chunks = ChunkStream(request, reply, include_usage)
        await chunks.start()
        if reply.text:
            await chunks.send(chunks.chunk(Delta(content=reply.text)))
        return await chunks.end()

    async def run() -> tuple[Reply, web.StreamResponse]:
        first, rest, used = await events()
        reply = Reply(session_id=used)
        if not asked.stream:
            await reply.consume(first, rest)
            return reply, await _completion(reply)
        chunks = ChunkStream(request, reply, include_usage)
        await chunks.stream.open()

        async def relay(event: Event) -> None:
            had_id = reply.message_id is not None
            delta = reply.feed(event)
            if isinstance(event, Queued):
                await chunks.stream.comment(event.text)
            elif isinstance(event, WaitingForTurn):
                await chunks.stream.comment(WAITING)
            if not had_id and reply.message_id is not None:
                await chunks.send(chunks.chunk(Delta(role="assistant", content="")))
            if delta:
                await chunks.send(chunks.chunk(Delta(content=delta)))

        try:
            await reply.consume(first, rest, relay)
        except (MschatError, ApiError) as error:
            # refused after waiting for a turn: the stream is open, so it says why
            reply.error = error if isinstance(error, ApiError) else from_mschat(error)
        return reply, await chunks.end()

    return await once(request, user, [body, session_id], run, replay)


async def models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models: every usable model (the core's one list), the default first."""
    manager = services_of(request).manager
    names = list(dict.fromkeys(info.name for info in await manager.list_models()))
    try:
        default = (await manager.resolve_model(None)).full_name
    except MschatError:
        default = None
    if default is not None:
        names = [default, *[name for name in names if name != default]]
    cards = [ModelCard(id=name, owned_by=name.partition("/")[0]) for name in names]
    return json_response(ModelList(data=cards))
