"""OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models``.

The request's ``user`` names the mschat user. With the ``X-Mschat-Session``
header only the trailing user message is appended to that session (it holds
the history); without it a new session is made from the supplied messages and
its id comes back in the same header.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from mschat.api import fields
from mschat.api.chat import ensure_enabled
from mschat.api.context import services_of, settings_of
from mschat.api.errors import ApiError, bad_request, from_mschat, json_response
from mschat.api.replies import EventStream, Reply, first_event
from mschat.core.errors import MschatError, NotFound
from mschat.core.events import Event
from mschat.core.models import Origin
from mschat.core.rules import MAX_TOKENS_LIMIT
from mschat.core.titles import make_title
from mschat.core.tokens import estimate_tokens

SESSION_HEADER = "X-Mschat-Session"
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _content(value: Any, where: str, role: str) -> str:
    """Text of a message's content: a string or a list of text parts."""
    if value is None and role == "assistant":
        return ""
    if isinstance(value, str):
        return fields.text({"content": value}, "content", label=where) or ""
    if isinstance(value, list):
        pieces = []
        for index, part in enumerate(value):
            label = f"{where}[{index}]"
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(
                    label,
                    f"{label} must be a text part "
                    '({"type": "text", "text": "..."}); only text is supported',
                )
            pieces.append(fields.text(part, "text", required=True, label=f"{label}.text") or "")
        return "".join(pieces)
    raise bad_request(where, f"{where} must be a string or a list of text parts")


def parse_messages(body: dict[str, Any]) -> tuple[str | None, list[tuple[str, str]], str]:
    """(system text, earlier turns, trailing user text) from ``messages``."""
    messages = body.get("messages")
    if messages is None:
        raise bad_request("messages", "messages is required", "missing_field")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages", "messages must be a non-empty list")
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(where, f"{where} must be an object with role and content")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise bad_request(
                f"{where}.role", f"{where}.role must be one of system, developer, user, assistant"
            )
        if "content" not in message:
            raise bad_request(f"{where}.content", f"{where}.content is required", "missing_field")
        text = _content(message["content"], f"{where}.content", role)
        if ROLES[role] == "system":
            if text.strip():
                system.append(text)
        else:
            turns.append((ROLES[role], text))
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise bad_request("messages", "the last message must be a non-empty user message")
    return ("\n\n".join(system) or None), turns[:-1], turns[-1][1]


def _session_header(request: web.Request) -> int | None:
    raw = request.headers.get(SESSION_HEADER)
    if raw is None or not raw.strip():
        return None
    return fields.integer({SESSION_HEADER: raw}, SESSION_HEADER, minimum=1, digits_ok=True)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """Sampling options mschat honours; others (tools, logprobs…) are ignored."""
    n = fields.integer(body, "n", minimum=1, maximum=128)
    if n not in (None, 1):
        raise bad_request("n", "n must be 1: mschat answers with one choice")
    max_tokens = fields.integer(body, "max_completion_tokens", minimum=1, maximum=MAX_TOKENS_LIMIT)
    if max_tokens is None:
        max_tokens = fields.integer(body, "max_tokens", minimum=1, maximum=MAX_TOKENS_LIMIT)
    return {
        "temperature": fields.number(body, "temperature", minimum=0, maximum=2),
        "max_tokens": max_tokens,
    }


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise bad_request("stream_options", "stream_options must be an object")
    return bool(fields.boolean(options, "include_usage"))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: answer in a new or the header's session."""
    services = services_of(request)
    manager = services.manager
    body = await fields.read_json(request)
    system, earlier, question = parse_messages(body)
    model = fields.text(body, "model", max_len=fields.MAX_NAME)
    model = model.strip() if model and model.strip() else None
    stream = bool(fields.boolean(body, "stream"))
    include_usage = _include_usage(body)
    options = _options(body)
    name = fields.user_name(body, "user", default=settings_of(request).default_user)
    session_id = _session_header(request)
    if model is not None:
        try:
            model = manager.resolve_model(model).full_name
        except NotFound as error:
            raise ApiError(404, str(error), code="model_not_found", param="model") from None
    user = await manager.user("api", name)
    ensure_enabled(user)
    created = session_id is None
    if session_id is None:
        session = await manager.create_session(
            user, origin=Origin.API, title=make_title(question), model=model, system_msg=system
        )
        session_id = session.id
        if earlier:
            await manager.import_messages(user, session.id, earlier)
        events = manager.ask(user, question, session_id=session_id, origin=Origin.API, **options)
    else:
        events = manager.ask(
            user,
            question,
            session_id=session_id,
            origin=Origin.API,
            model=model,
            system=system,
            **options,
        )
    try:
        first = await first_event(events)
    except MschatError as error:
        if created:
            # refused before anything was asked (rate limit, ignored user): leave no trace
            await manager.remove_session(user, session_id)
            raise from_mschat(error) from None
        raise from_mschat(error, param=SESSION_HEADER).with_headers(
            {SESSION_HEADER: str(session_id)}
        ) from None
    headers = {SESSION_HEADER: str(session_id)}
    if stream:
        return await _stream(request, first, events, headers, include_usage)
    reply = Reply()
    await reply.consume(first, events)
    if reply.error is not None:
        return from_mschat(reply.error).with_headers(headers).response()
    return json_response(_completion(reply), headers=headers)


def _usage(reply: Reply) -> dict[str, int]:
    """Usage as OpenAI reports it; estimates fill in what the provider did not say."""
    usage = reply.usage
    prompt = usage.prompt_tokens if usage and usage.prompt_tokens is not None else None
    completion = usage.completion_tokens if usage and usage.completion_tokens is not None else None
    prompt = prompt if prompt is not None else reply.prompt_estimate
    completion = completion if completion is not None else estimate_tokens(reply.text)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(reply: Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{reply.message_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": None},
                "finish_reason": reply.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(reply),
    }


async def _stream(
    request: web.Request,
    first: Event | None,
    events: AsyncIterator[Event],
    headers: dict[str, str],
    include_usage: bool,
) -> web.StreamResponse:
    """OpenAI's chunk stream: role, content deltas, finish, optional usage, [DONE]."""
    stream = EventStream(request, headers)
    await stream.open()
    reply = Reply()
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": f"chatcmpl-{reply.message_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return data

    async def relay(event: Event) -> None:
        had_id = reply.message_id is not None
        delta = reply.feed(event)
        if not had_id and reply.message_id is not None:
            await stream.send(chunk({"role": "assistant", "content": ""}))
        if delta:
            await stream.send(chunk({"content": delta}))

    await reply.consume(first, events, relay)
    if reply.error is not None:
        await stream.send(from_mschat(reply.error).body())
    else:
        await stream.send(chunk({}, reply.finish_reason or "stop"))
        if include_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = _usage(reply)
            await stream.send(final)
    await stream.send("[DONE]")
    return await stream.close()


async def models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models: the configured models, the default one first."""
    registry = services_of(request).registry
    names = [info.name for info in registry.configured_models()]
    try:
        default = registry.resolve(None).full_name
    except MschatError:
        default = None
    if default is not None:
        names = [default, *[n for n in names if n != default]]
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": name.partition("/")[0]}
        for name in names
    ]
    return json_response({"object": "list", "data": data})
