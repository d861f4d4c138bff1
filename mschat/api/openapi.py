"""The OpenAPI 3.1 document of the HTTP API (served at /openapi.json).

Its schemas and parameters are generated from the shapes (``shapes.py``); this
module only lists the routes, what each answers and when.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from mschat import __version__
from mschat.api import shapes

JSON = "application/json"
SSE = "text/event-stream"
REF = "#/components/schemas/{model}"

#: what the API reads (validation schemas) and what it answers (serialisation schemas)
REQUESTS: tuple[type[BaseModel], ...] = (
    shapes.ChatRequest,
    shapes.UserPatch,
    shapes.SessionCreate,
    shapes.SessionPatch,
    shapes.ActingUser,
    shapes.ChatCompletionRequest,
)
ANSWERS: tuple[type[BaseModel], ...] = (
    shapes.Error,
    shapes.ChatResponse,
    shapes.ChatStart,
    shapes.ChatDelta,
    shapes.User,
    shapes.Session,
    shapes.SessionList,
    shapes.SessionPage,
    shapes.Deleted,
    shapes.ChatCompletion,
    shapes.ChatCompletionChunk,
    shapes.ModelList,
    shapes.Health,
    shapes.ServerSentEvent,
)

#: what each error status means, anywhere
STATUSES = {
    400: "Invalid JSON, field, parameter or header (error.param names it)",
    401: "Missing or wrong bearer token",
    403: "Not allowed: a private session, not the creator, a disabled or ignored user, "
    "or an Origin not in api.cors_origins",
    404: "No such user, session, model or route",
    409: "The request first sent with this Idempotency-Key is still running",
    413: "Body larger than api.max_body",
    414: "URL too long",
    415: "A body that is not Content-Type: application/json",
    421: "A Host header that is neither this machine nor in api.allowed_hosts",
    422: "This Idempotency-Key was first sent with another request",
    429: "Busy or rate limited",
    431: "A header too long, or too many headers",
    502: "The model provider failed (the question and any partial reply are stored)",
    504: "The model provider timed out",
}
#: statuses any route may answer (before its handler runs)
ANYWHERE = (403, 414, 421, 431)
#: statuses of a route that reads a JSON body
WITH_BODY = (400, 413, 415)
#: statuses of a chat request, which may be retried with an Idempotency-Key
ASKING = (404, 409, 422, 429)


@functools.cache
def _schemas() -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], Any], dict[str, Any]]:
    """References to each shape, and the schemas of the components section."""
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((model, "validation") for model in REQUESTS),
        *((model, "serialization") for model in ANSWERS),
    ]
    refs, top = models_json_schema(pairs, ref_template=REF)
    return dict(refs), top.get("$defs", {})  # type: ignore[arg-type]


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    refs, _ = _schemas()
    mode: JsonSchemaMode = "validation" if model in REQUESTS else "serialization"
    return dict(refs[(model, mode)])


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without its ``null`` option (a parameter is absent instead)."""
    options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
    if len(options) != 1:
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**options[0], **merged}


def _parameters(model: type[shapes.Params], where: str) -> list[dict[str, Any]]:
    """OpenAPI parameters (in ``where``: path, query or header) from a shape's fields."""
    properties = model.model_json_schema(by_alias=True)["properties"]
    parameters = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        schema = _not_null(properties[key])
        schema.pop("title", None)
        if schema.get("default", 0) is None:
            del schema["default"]
        parameter = {"name": key, "in": where, "required": field.is_required(), "schema": schema}
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        parameters.append(parameter)
    return parameters


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(model)}}}


def _body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): _json(shapes.Error, STATUSES[status])
        for status in sorted({*ANYWHERE, *statuses})
    }


def _operation(
    operation_id: str,
    summary: str,
    answers: dict[str, Any],
    statuses: tuple[int, ...],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        **extra,
        "responses": {**answers, **_errors(*statuses)},
    }


def _paths() -> dict[str, Any]:
    session_header = {
        shapes.SESSION_HEADER: {"schema": {"type": "string"}, "description": "the session used"}
    }
    sse = {
        "description": "Server-sent events: start, one delta per piece, then done or error "
        "(data: ChatStart, ChatDelta, ChatResponse, Error plus ChatResponse)",
        "content": {SSE: {"schema": _ref(shapes.ServerSentEvent)}},
    }
    key = _parameters(shapes.IdempotencyHeader, "header")
    user_path = _parameters(shapes.UserPath, "path")
    id_path = _parameters(shapes.IdPath, "path")
    authed = (401,)
    return {
        "/chat": {
            "post": _operation(
                "chat",
                "Ask as a user (the ChatGPT-MS API); 'reset' starts a new session",
                {"200": _json(shapes.ChatResponse, "The reply")},
                (*authed, *WITH_BODY, *ASKING, 502, 504),
                parameters=key,
                requestBody=_body(shapes.ChatRequest),
            )
        },
        "/chat-stream": {
            "post": _operation(
                "chatStream",
                "Ask as a user, streamed: events start, delta (one per piece), then done or "
                "error; a retry with the same Idempotency-Key gets the whole reply as one delta",
                {"200": sse},
                (*authed, *WITH_BODY, *ASKING),
                parameters=key,
                requestBody=_body(shapes.ChatRequest),
            )
        },
        "/users/{user}": {
            "parameters": user_path,
            "get": _operation(
                "getUser",
                "A user's settings (404 for a name no question created yet)",
                {"200": _json(shapes.User, "The user")},
                (*authed, 400, 404),
            ),
            "patch": _operation(
                "patchUser",
                "Change a user's settings (creates the user)",
                {"200": _json(shapes.User, "The user")},
                (*authed, *WITH_BODY, 404),
                requestBody=_body(shapes.UserPatch),
            ),
        },
        "/users/{user}/sessions": {
            "parameters": user_path,
            "get": _operation(
                "listSessions",
                "The user's sessions, most recent first (empty for an unknown user)",
                {"200": _json(shapes.SessionList, "Sessions")},
                (*authed, 400),
                parameters=_parameters(shapes.SessionListQuery, "query"),
            ),
            "post": _operation(
                "createSession",
                "A new private session (creates the user)",
                {"201": _json(shapes.Session, "The session")},
                (*authed, *WITH_BODY),
                requestBody=_body(shapes.SessionCreate, required=False),
            ),
        },
        "/sessions/{id}": {
            "parameters": id_path,
            "get": _operation(
                "getSession",
                "A session and a page of its messages (newest page first)",
                {"200": _json(shapes.SessionPage, "The session")},
                (*authed, 400, 404),
                parameters=_parameters(shapes.SessionQuery, "query"),
            ),
            "patch": _operation(
                "patchSession",
                "Rename, set public, model or system message (creator only)",
                {"200": _json(shapes.Session, "The session")},
                (*authed, *WITH_BODY, 404),
                parameters=_parameters(shapes.UserQuery, "query"),
                requestBody=_body(shapes.SessionPatch),
            ),
            "delete": _operation(
                "deleteSession",
                "Delete a session and its messages (creator only)",
                {"200": _json(shapes.Deleted, "Deleted")},
                (*authed, *WITH_BODY, 404),
                parameters=_parameters(shapes.UserQuery, "query"),
                requestBody=_body(shapes.ActingUser, required=False),
            ),
        },
        "/v1/chat/completions": {
            "post": _operation(
                "createChatCompletion",
                "OpenAI-compatible chat completion (stream or not)",
                {
                    "200": {
                        "description": "A completion (JSON), or chunks (SSE, each data a "
                        "ChatCompletionChunk, then [DONE]) when stream is true",
                        "headers": session_header,
                        "content": {
                            JSON: {"schema": _ref(shapes.ChatCompletion)},
                            SSE: {"schema": _ref(shapes.ServerSentEvent)},
                        },
                    }
                },
                (*authed, *WITH_BODY, *ASKING, 502, 504),
                parameters=[*_parameters(shapes.SessionHeader, "header"), *key],
                requestBody=_body(shapes.ChatCompletionRequest),
            )
        },
        "/v1/models": {
            "get": _operation(
                "listModels",
                "Every usable model, the default first",
                {"200": _json(shapes.ModelList, "Models")},
                authed,
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                {
                    "200": {
                        "description": "OpenAPI 3.1 document",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
                authed,
            )
        },
        "/healthz": {
            "get": _operation(
                "healthz",
                "Liveness (no token needed)",
                {"200": _json(shapes.Health, "Healthy")},
                (),
                security=[],
            )
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document describing every endpoint (a fresh copy each time)."""
    return copy.deepcopy(_document())


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mschat HTTP API",
            "version": __version__,
            "description": "Multi-user, multi-session chat: the ChatGPT-MS /chat API, "
            "sessions over REST and an OpenAI-compatible /v1. Errors are "
            '{"error": {"message", "type", "param", "code"}}.',
        },
        "servers": [{"url": "http://127.0.0.1:5000"}],
        "security": [{"bearerAuth": []}, {}],
        "components": {
            "schemas": _schemas()[1],
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "paths": _paths(),
    }
