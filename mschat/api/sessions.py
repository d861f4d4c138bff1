"""Sessions and user settings over REST; the acting user is always named explicitly."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mschat.api import fields
from mschat.api.context import services_of
from mschat.api.errors import bad_request, from_mschat, json_response
from mschat.api.shapes import message_json, session_json, user_json
from mschat.core.errors import MschatError
from mschat.core.manager import SessionManager
from mschat.core.models import Origin, Status, User
from mschat.core.rules import ADMIN_ONLY_SETTINGS, MAX_TOKENS_LIMIT, USER_SETTINGS

MAX_PAGE = 500
MAX_TITLE = 200
#: what a user may change of themselves (the core's settings less the admin-only ones)
USER_FIELDS = (
    *(key for key in USER_SETTINGS if key not in ADMIN_ONLY_SETTINGS),
    "current_session",
)
SESSION_FIELDS = ("user", "title", "public", "model", "system_msg")
NEW_SESSION_FIELDS = ("title", "model", "system_msg", "public", "current")


def _only(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise bad_request(
                key, f"unknown field {key!r}; expected one of {', '.join(allowed)}", "unknown_field"
            )


def _model(manager: SessionManager, body: dict[str, Any]) -> str | None:
    """The ``model`` field resolved to ``provider/model`` (400 naming it when unknown)."""
    name = fields.text(body, "model", blank=False, max_len=fields.MAX_NAME)
    if name is None:
        return None
    try:
        return manager.resolve_model(name).full_name
    except MschatError as error:
        raise bad_request("model", str(error), "model_not_found") from None


async def _api_user(request: web.Request, name: str) -> tuple[SessionManager, User]:
    manager = services_of(request).manager
    return manager, await manager.user("api", name)


def acting_user(request: web.Request, body: dict[str, Any] | None = None) -> str:
    """The ``user`` acting on a session: from the query string or the JSON body."""
    from_query = fields.user_name(request.query, "user") if "user" in request.query else None
    from_body = fields.user_name(body, "user") if body and body.get("user") is not None else None
    if from_query and from_body and from_query != from_body:
        raise bad_request("user", "user differs between the query string and the body")
    name = from_query or from_body
    if name is None:
        raise bad_request("user", "user is required (?user=NAME or in the body)", "missing_field")
    return name


# ---- users ------------------------------------------------------------------------


async def get_user(request: web.Request) -> web.StreamResponse:
    """GET /users/{user}: the user's settings (API users are created on first use)."""
    _, user = await _api_user(request, fields.path_user(request))
    return json_response(user_json(user))


async def patch_user(request: web.Request) -> web.StreamResponse:
    """PATCH /users/{user}: change settings; ``current_session`` switches session."""
    manager, user = await _api_user(request, fields.path_user(request))
    body = await fields.read_json(request)
    _only(body, USER_FIELDS)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = fields.text(
            body, "name", required=True, blank=False, max_len=fields.MAX_NAME
        )
    if "system_msg" in body:
        changes["system_msg"] = fields.text(body, "system_msg")
    if "max_tokens" in body:
        changes["max_tokens"] = fields.integer(
            body, "max_tokens", required=True, minimum=1, maximum=MAX_TOKENS_LIMIT
        )
    if "temperature" in body:
        changes["temperature"] = fields.number(body, "temperature", minimum=0, maximum=2)
    for flag in ("show_public", "attach"):
        if flag in body:
            changes[flag] = fields.boolean(body, flag)
    if "model" in body:
        changes["model"] = _model(manager, body)
    if "status" in body:
        status = fields.text(body, "status", required=True)
        if status not in tuple(Status):
            raise bad_request("status", "status must be one of new, active, disabled")
        changes["status"] = status
    current = fields.integer(body, "current_session", minimum=1, digits_ok=True)
    changes = {k: v for k, v in changes.items() if v is not None or k in ("system_msg", "model")}
    if current is not None:
        try:
            user = await manager.switch_session(user, current)
        except MschatError as error:
            raise from_mschat(error, param="current_session") from None
    if changes:
        user = await manager.update_user(user, user.id, **changes)
    return json_response(user_json(user))


# ---- sessions ---------------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.StreamResponse:
    """GET /users/{user}/sessions: own sessions (plus public ones with include_public)."""
    manager, user = await _api_user(request, fields.path_user(request))
    limit = fields.query_int(request, "limit", 50, minimum=1, maximum=MAX_PAGE)
    offset = fields.query_int(request, "offset", 0, minimum=0, maximum=2**31)
    include_public = fields.query_bool(request, "include_public")
    assert limit is not None and offset is not None
    sessions = await manager.list_sessions(
        user, include_public=include_public, limit=limit, offset=offset
    )
    total = await manager.count_sessions(user, include_public=include_public)
    return json_response(
        {
            "sessions": [session_json(s) for s in sessions],
            "total": total,
            "limit": limit,
            "offset": offset,
            "current_session_id": user.current_session_id,
        }
    )


async def create_session(request: web.Request) -> web.StreamResponse:
    """POST /users/{user}/sessions: a new private session (``current`` makes it current)."""
    manager, user = await _api_user(request, fields.path_user(request))
    body = await fields.read_json(request, required=False)
    _only(body, NEW_SESSION_FIELDS)
    title = fields.text(body, "title", blank=False, max_len=MAX_TITLE)
    model = _model(manager, body)
    system_msg = fields.text(body, "system_msg")
    public = fields.boolean(body, "public")
    current = fields.boolean(body, "current")
    session = await manager.create_session(
        user, origin=Origin.API, title=title, model=model, system_msg=system_msg, public=public
    )
    if current:
        await manager.switch_session(user, session.id)
    return json_response(session_json(session), status=201)


async def get_session(request: web.Request) -> web.StreamResponse:
    """GET /sessions/{id}?user=NAME&limit=50&before=ID: a session and a page of messages."""
    session_id = fields.path_id(request)
    manager, user = await _api_user(request, acting_user(request))
    limit = fields.query_int(request, "limit", 50, minimum=1, maximum=MAX_PAGE)
    before = fields.query_int(request, "before", None, minimum=1)
    assert limit is not None
    session = await manager.get_session(user, session_id)
    messages = await manager.messages(user, session_id, limit=limit + 1, before_id=before)
    has_more = len(messages) > limit
    if has_more:
        messages = messages[1:]
    return json_response(
        {
            "session": session_json(session),
            "messages": [message_json(m) for m in messages],
            "has_more": has_more,
            "next_before": messages[0].id if has_more and messages else None,
        }
    )


async def patch_session(request: web.Request) -> web.StreamResponse:
    """PATCH /sessions/{id}: rename, set public, model or system message (creator only)."""
    session_id = fields.path_id(request)
    body = await fields.read_json(request)
    _only(body, SESSION_FIELDS)
    manager, user = await _api_user(request, acting_user(request, body))
    title = fields.text(body, "title", blank=False, max_len=MAX_TITLE)
    public = fields.boolean(body, "public")
    model = _model(manager, body)
    system_given = "system_msg" in body
    system_msg = fields.text(body, "system_msg")
    session = await manager.get_session(user, session_id)
    if title is not None:
        session = await manager.rename_session(user, session_id, title)
    if public is not None:
        session = await manager.set_session_public(user, session_id, public)
    if model is not None:
        session = await manager.set_session_model(user, session_id, model)
    if system_given:
        session = await manager.set_session_system(user, session_id, system_msg)
    return json_response(session_json(session))


async def delete_session(request: web.Request) -> web.StreamResponse:
    """DELETE /sessions/{id}?user=NAME: remove a session and its messages (creator only)."""
    session_id = fields.path_id(request)
    body = await fields.read_json(request, required=False) if request.can_read_body else {}
    manager, user = await _api_user(request, acting_user(request, body))
    await manager.remove_session(user, session_id)
    return json_response({"deleted": True, "id": session_id})
