"""The ChatGPT-MS API: ``POST /chat`` and ``POST /chat-stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from mschat.api import fields
from mschat.api.context import services_of
from mschat.api.errors import ApiError, from_mschat, json_response
from mschat.api.idempotent import once
from mschat.api.replies import WAITING, EventStream, Reply, first_event
from mschat.api.shapes import ChatDelta, ChatRequest, ChatResponse, ChatStart, Usage
from mschat.core import eligibility
from mschat.core.errors import MschatError
from mschat.core.events import Event, Queued, Started, WaitingForTurn
from mschat.core.manager import SessionManager
from mschat.core.models import Origin, User

#: the ChatGPT-MS command: this message starts a new session instead of being asked
RESET = "reset"
RESET_REPLY = "Started a new session."


async def _asker(request: web.Request) -> tuple[SessionManager, User, ChatRequest, Any]:
    """The validated request and its user (created on first use), who may chat."""
    body = await fields.read_json(request)
    ask = fields.validate(ChatRequest, body)
    manager = services_of(request).manager
    user = await manager.user("api", ask.user)
    eligibility.check_may_route(user)
    return manager, user, ask, body


async def _events(
    manager: SessionManager, user: User, ask: ChatRequest
) -> tuple[Event | None, AsyncIterator[Event]]:
    """Start the answer; errors raised before anything is stored become HTTP errors."""
    files = [attachment.as_core() for attachment in ask.attachments]
    if ask.session is None:
        events = manager.chat(user, ask.message, origin=Origin.API, attachments=files)
    else:
        events = manager.ask(
            user, ask.message, session_id=ask.session, origin=Origin.API, attachments=files
        )
    try:
        return await first_event(events), events
    except MschatError as error:
        raise from_mschat(error, param="session" if ask.session is not None else None) from None


async def _reset(manager: SessionManager, user: User) -> Reply:
    """A fresh session that becomes the user's current one (the user becomes active)."""
    session = await manager.create_session(user, origin=Origin.API)
    await manager.switch_session(user, session.id)
    return Reply(
        session_id=session.id,
        model=session.model,
        created_session=True,
        parts=[RESET_REPLY],
        reset=True,
    )


def _is_reset(ask: ChatRequest) -> bool:
    return ask.message.strip().lower() == RESET


def _result(reply: Reply) -> ChatResponse:
    return ChatResponse(
        response=reply.text,
        session_id=reply.session_id,
        message_id=reply.message_id,
        model=reply.model,
        finish_reason=reply.finish_reason,
        usage=Usage.of(reply.usage),
        history_trimmed=reply.trimmed,
        reset=reply.reset,
    )


def _start(reply: Reply) -> ChatStart:
    return ChatStart(
        session_id=reply.session_id,
        message_id=reply.message_id,
        model=reply.model,
        created_session=reply.created_session,
    )


def _queued(event: Queued) -> dict[str, Any]:
    """The ``queued`` event of ``/chat-stream``: the question's place in line (each change)."""
    return {"position": event.position, "ahead": event.ahead, "message": event.text}


# ---- POST /chat -----------------------------------------------------------------


async def _answer(reply: Reply) -> web.StreamResponse:
    """The JSON answer of a reply: the result, or its error with the result's fields."""
    if reply.error is not None:
        return reply.error.response(extra=_result(reply))
    return json_response(_result(reply))


async def chat(request: web.Request) -> web.StreamResponse:
    """POST /chat: ask as ``user`` and answer with the whole reply.

    A question waiting in the queue holds the request until its answer; one the
    queue refuses is an error (429, or 503 while paused) naming its stored reply.
    """
    manager, user, ask, body = await _asker(request)

    async def run() -> tuple[Reply, web.StreamResponse]:
        if _is_reset(ask):
            reply = await _reset(manager, user)
        else:
            first, events = await _events(manager, user, ask)
            reply = Reply()
            await reply.consume(first, events)
        return reply, await _answer(reply)

    return await once(request, user, body, run, _answer)


# ---- POST /chat-stream --------------------------------------------------------------


async def _end(stream: EventStream, reply: Reply) -> web.StreamResponse:
    """The last event (done, or error with the result's fields) and the end of the stream."""
    if reply.error is not None:
        error = reply.error.body()
        error.update(_result(reply).model_dump(mode="json"))
        await stream.send(error, event="error")
    else:
        await stream.send(_result(reply), event="done")
    return await stream.close()


async def chat_stream(request: web.Request) -> web.StreamResponse:
    """POST /chat-stream: the same, as server-sent events (start, delta…, done | error).

    ``queued`` events come before ``start`` while the question waits in line.
    """
    manager, user, ask, body = await _asker(request)

    async def replay(reply: Reply) -> web.StreamResponse:
        """A whole reply as one stream: start, one delta, done (or error)."""
        stream = EventStream(request)
        await stream.open()
        await stream.send(_start(reply), event="start")
        if reply.text:
            await stream.send(ChatDelta(text=reply.text), event="delta")
        return await _end(stream, reply)

    async def run() -> tuple[Reply, web.StreamResponse]:
        if _is_reset(ask):
            reply = await _reset(manager, user)
            return reply, await replay(reply)
        first, events = await _events(manager, user, ask)
        stream = EventStream(request)
        await stream.open()
        reply = Reply()

        async def relay(event: Event) -> None:
            delta = reply.feed(event)
            if isinstance(event, Queued):
                await stream.send(_queued(event), event="queued")
            elif isinstance(event, WaitingForTurn):
                await stream.comment(WAITING)
            elif isinstance(event, Started):
                await stream.send(_start(reply), event="start")
            elif delta is not None:
                await stream.send(ChatDelta(text=delta), event="delta")

        try:
            await reply.consume(first, events, relay)
        except (MschatError, ApiError) as error:
            # refused after waiting for a turn: the stream is open, so it says why
            reply.error = error if isinstance(error, ApiError) else from_mschat(error)
        return reply, await _end(stream, reply)

    return await once(request, user, body, run, replay)
