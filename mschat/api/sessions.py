"""Sessions and user settings over REST; the acting user is always named explicitly.

Reading never writes: a name no API user has yet is answered as a visitor who
owns nothing (404 for its settings, empty listings, public sessions only),
and it is not stored. Only asking, creating a session or changing one's own
settings creates the user.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mschat.api import fields
from mschat.api.context import services_of
from mschat.api.errors import bad_request, from_mschat, json_response
from mschat.api.shapes import (
    ActingUser,
    Deleted,
    IdPath,
    Message,
    Session,
    SessionCreate,
    SessionList,
    SessionListQuery,
    SessionPage,
    SessionPatch,
    SessionQuery,
    User,
    UserPatch,
    UserPath,
    UserQuery,
)
from mschat.core import models as core
from mschat.core.errors import MschatError, NotFound
from mschat.core.manager import SessionManager
from mschat.core.rules import DEFAULT_STATUS


def visitor(name: str) -> core.User:
    """An API user who does not exist yet: owns nothing, sees what everyone sees.

    Never stored (id 0 is no row), so reading as an unknown name writes nothing.
    """
    return core.User(
        id=0,
        kind=core.UserKind.API,
        external_id=name,
        name=name,
        created="",
        updated="",
        modified="",
        status=DEFAULT_STATUS[core.UserKind.API],
    )


async def _reader(request: web.Request, name: str) -> tuple[SessionManager, core.User]:
    """The manager and the named API user, or a visitor (nothing is created)."""
    manager = services_of(request).manager
    user = await manager.find_existing_user(core.UserKind.API, name)
    return manager, user or visitor(name)


async def _writer(request: web.Request, name: str) -> tuple[SessionManager, core.User]:
    """The manager and the named API user, created on first use."""
    manager = services_of(request).manager
    return manager, await manager.user(core.UserKind.API, name)


def _model(manager: SessionManager, name: str | None) -> str | None:
    """A model name resolved to ``provider/model`` (400 naming it when unknown)."""
    if name is None:
        return None
    try:
        return manager.resolve_model(name).full_name
    except MschatError as error:
        raise bad_request("model", str(error), "model_not_found") from None


def _acting(request: web.Request, from_body: str | None) -> str:
    """The ``user`` acting on a session: from the query string or the JSON body."""
    from_query = fields.query(request, UserQuery).user
    if from_query and from_body and from_query != from_body:
        raise bad_request("user", "user differs between the query string and the body")
    name = from_query or from_body
    if name is None:
        raise bad_request("user", "user is required (?user=NAME or in the body)", "missing_field")
    return name


# ---- users ------------------------------------------------------------------------


async def get_user(request: web.Request) -> web.StreamResponse:
    """GET /users/{user}: the user's settings (404 for a name never used)."""
    name = fields.path(request, UserPath).user
    _, user = await _reader(request, name)
    if user.id == 0:
        raise from_mschat(
            NotFound(f"no API user {name!r}", hint="a user is created by its first question"),
            param="user",
        )
    return json_response(User.of(user))


async def patch_user(request: web.Request) -> web.StreamResponse:
    """PATCH /users/{user}: change settings; ``current_session`` switches session."""
    name = fields.path(request, UserPath).user
    patch = fields.validate(UserPatch, await fields.read_json(request))
    manager, user = await _writer(request, name)
    given = patch.model_fields_set
    changes: dict[str, Any] = {
        key: getattr(patch, key)
        for key in given - {"current_session", "model"}
        if getattr(patch, key) is not None or key in UserPatch.keeps_null
    }
    if "model" in given:
        changes["model"] = _model(manager, patch.model)
    if patch.current_session is not None:
        try:
            user = await manager.switch_session(user, patch.current_session)
        except MschatError as error:
            raise from_mschat(error, param="current_session") from None
    if changes:
        user = await manager.update_user(user, user.id, **changes)
    return json_response(User.of(user))


# ---- sessions ---------------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.StreamResponse:
    """GET /users/{user}/sessions: own sessions (plus public ones with include_public)."""
    name = fields.path(request, UserPath).user
    page = fields.query(request, SessionListQuery)
    manager, user = await _reader(request, name)
    sessions = await manager.list_sessions(
        user, include_public=page.include_public, limit=page.limit, offset=page.offset
    )
    total = await manager.count_sessions(user, include_public=page.include_public)
    listing = SessionList(
        sessions=[Session.of(s) for s in sessions],
        total=total,
        limit=page.limit,
        offset=page.offset,
        current_session_id=user.current_session_id,
    )
    return json_response(listing)


async def create_session(request: web.Request) -> web.StreamResponse:
    """POST /users/{user}/sessions: a new private session (``current`` makes it current)."""
    name = fields.path(request, UserPath).user
    new = fields.validate(SessionCreate, await fields.read_json(request, required=False))
    manager, user = await _writer(request, name)
    session = await manager.create_session(
        user,
        origin=core.Origin.API,
        title=new.title,
        model=_model(manager, new.model),
        system_msg=new.system_msg,
        public=new.public,
    )
    if new.current:
        await manager.switch_session(user, session.id)
    return json_response(Session.of(session), status=201)


async def get_session(request: web.Request) -> web.StreamResponse:
    """GET /sessions/{id}?user=NAME&limit=50&before=ID: a session and a page of messages."""
    session_id = fields.path(request, IdPath).id
    page = fields.query(request, SessionQuery)
    manager, user = await _reader(request, page.user)
    session = await manager.get_session(user, session_id)
    messages = await manager.messages(user, session_id, limit=page.limit + 1, before_id=page.before)
    has_more = len(messages) > page.limit
    if has_more:
        messages = messages[1:]
    return json_response(
        SessionPage(
            session=Session.of(session),
            messages=[Message.of(m) for m in messages],
            has_more=has_more,
            next_before=messages[0].id if has_more and messages else None,
        )
    )


async def patch_session(request: web.Request) -> web.StreamResponse:
    """PATCH /sessions/{id}: rename, set public, model or system message (creator only)."""
    session_id = fields.path(request, IdPath).id
    patch = fields.validate(SessionPatch, await fields.read_json(request))
    manager, user = await _reader(request, _acting(request, patch.user))
    model = _model(manager, patch.model)
    session = await manager.get_session(user, session_id)
    if patch.title is not None:
        session = await manager.rename_session(user, session_id, patch.title)
    if patch.public is not None:
        session = await manager.set_session_public(user, session_id, patch.public)
    if model is not None:
        session = await manager.set_session_model(user, session_id, model)
    if "system_msg" in patch.model_fields_set:
        session = await manager.set_session_system(user, session_id, patch.system_msg)
    return json_response(Session.of(session))


async def delete_session(request: web.Request) -> web.StreamResponse:
    """DELETE /sessions/{id}?user=NAME: remove a session and its messages (creator only)."""
    session_id = fields.path(request, IdPath).id
    body = await fields.read_json(request, required=False) if request.can_read_body else {}
    acting = fields.validate(ActingUser, body)
    manager, user = await _reader(request, _acting(request, acting.user))
    await manager.remove_session(user, session_id)
    return json_response(Deleted(deleted=True, id=session_id))
