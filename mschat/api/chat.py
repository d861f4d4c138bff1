"""The seed's ChatGPT-MS API: ``POST /chat`` and ``POST /chat-stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from mschat.api import fields
from mschat.api.context import services_of
from mschat.api.errors import ApiError, from_mschat, json_response
from mschat.api.replies import EventStream, Reply, first_event
from mschat.api.shapes import usage_json
from mschat.core.errors import MschatError
from mschat.core.events import Event, Started
from mschat.core.manager import SessionManager
from mschat.core.models import Origin, Session, Status, User

#: the seed's command: this message starts a new session instead of being asked
RESET = "reset"
RESET_REPLY = "Started a new session."


def ensure_enabled(user: User) -> None:
    """A disabled API user gets a clear 403 before anything is stored."""
    if user.status == Status.DISABLED:
        raise ApiError(
            403,
            f"user {user.external_id!r} is disabled; set its status to new or active "
            '(PATCH /users/{user} with {"status": "active"})',
            code="user_disabled",
            param="user",
        )


async def reset(manager: SessionManager, user: User) -> Session:
    """A fresh session that becomes the user's current one (the user becomes active)."""
    session = await manager.create_session(user, origin=Origin.API)
    await manager.switch_session(user, session.id)
    return session


async def _request(request: web.Request) -> tuple[SessionManager, User, str, int | None]:
    body = await fields.read_json(request)
    name = fields.user_name(body)
    message = fields.text(body, "message", required=True, blank=False)
    assert message is not None
    session_id = fields.integer(body, "session", minimum=1, digits_ok=True)
    manager = services_of(request).manager
    user = await manager.user("api", name)
    ensure_enabled(user)
    return manager, user, message, session_id


async def _events(
    manager: SessionManager, user: User, message: str, session_id: int | None
) -> tuple[Event | None, AsyncIterator[Event]]:
    """Start the answer; errors raised before anything is stored become HTTP errors."""
    if session_id is None:
        events = manager.chat(user, message, origin=Origin.API)
    else:
        events = manager.ask(user, message, session_id=session_id, origin=Origin.API)
    try:
        return await first_event(events), events
    except MschatError as error:
        raise from_mschat(error, param="session" if session_id is not None else None) from None


def _result(reply: Reply) -> dict[str, Any]:
    result = {
        "response": reply.text,
        "session_id": reply.session_id,
        "message_id": reply.message_id,
        "model": reply.model,
        "finish_reason": reply.finish_reason,
        "usage": usage_json(reply.usage),
        "history_trimmed": reply.trimmed,
    }
    if reply.reset:
        result["reset"] = True
    return result


def _start(reply: Reply) -> dict[str, Any]:
    return {
        "session_id": reply.session_id,
        "message_id": reply.message_id,
        "model": reply.model,
        "created_session": reply.created_session,
    }


async def _reset(manager: SessionManager, user: User) -> Reply:
    session = await reset(manager, user)
    return Reply(
        session_id=session.id,
        model=session.model,
        created_session=True,
        parts=[RESET_REPLY],
        reset=True,
    )


async def chat(request: web.Request) -> web.StreamResponse:
    """POST /chat: ask as ``user`` and answer with the whole reply."""
    manager, user, message, session_id = await _request(request)
    if message.strip().lower() == RESET:
        return json_response(_result(await _reset(manager, user)))
    first, events = await _events(manager, user, message, session_id)
    reply = Reply()
    await reply.consume(first, events)
    if reply.error is not None:
        return from_mschat(reply.error).response(extra=_result(reply))
    return json_response(_result(reply))


async def chat_stream(request: web.Request) -> web.StreamResponse:
    """POST /chat-stream: the same, as server-sent events (start, delta…, done | error)."""
    manager, user, message, session_id = await _request(request)
    stream = EventStream(request)
    if message.strip().lower() == RESET:
        reply = await _reset(manager, user)
        await stream.open()
        await stream.send(_start(reply), event="start")
        await stream.send({"text": reply.text}, event="delta")
        await stream.send(_result(reply), event="done")
        return await stream.close()
    first, events = await _events(manager, user, message, session_id)
    reply = Reply()
    await stream.open()

    async def relay(event: Event) -> None:
        delta = reply.feed(event)
        if isinstance(event, Started):
            await stream.send(_start(reply), event="start")
        elif delta is not None:
            await stream.send({"text": delta}, event="delta")

    await reply.consume(first, events, relay)
    if reply.error is not None:
        await stream.send({**from_mschat(reply.error).body(), **_result(reply)}, event="error")
    else:
        await stream.send(_result(reply), event="done")
    return await stream.close()
