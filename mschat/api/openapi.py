"""The OpenAPI 3 document of the HTTP API, written by hand (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from mschat import __version__

JSON = "application/json"
SSE = "text/event-stream"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Invalid JSON or field (error.param names it)",
        401: "Missing or wrong bearer token",
        403: "Not allowed (private session, not the creator, disabled user)",
        404: "No such session, model or route",
        413: "Body larger than api.max_body",
        429: "Busy or rate limited",
        502: "The model provider failed",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


NULLABLE_STRING = {"type": "string", "nullable": True}
NULLABLE_INT = {"type": "integer", "nullable": True}
USER_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": r"\S",
    "description": "an API user's name (created on first use)",
    "example": "shiyemin",
}
ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}

USER_PATH = {"name": "user", "in": "path", "required": True, "schema": USER_NAME}
ID_PATH = {"name": "id", "in": "path", "required": True, "schema": ID}
USER_QUERY = {
    "name": "user",
    "in": "query",
    "required": True,
    "schema": USER_NAME,
    "description": "the acting user",
}

SCHEMAS: dict[str, Any] = {
    "ServerSentEvent": {
        "type": "object",
        "description": "One server-sent event; `data` is JSON text (or `[DONE]` on /v1)",
        "required": ["data"],
        "properties": {
            "event": {
                "type": "string",
                "description": "start, delta, done or error (/chat-stream)",
            },
            "data": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string", "example": "invalid_request_error"},
                    "param": {**NULLABLE_STRING, "description": "the offending field"},
                    "code": NULLABLE_STRING,
                },
            }
        },
    },
    "Usage": {
        "type": "object",
        "nullable": True,
        "properties": {
            "prompt_tokens": NULLABLE_INT,
            "completion_tokens": NULLABLE_INT,
            "total_tokens": NULLABLE_INT,
        },
    },
    "ChatRequest": {
        "type": "object",
        "required": ["message", "user"],
        "properties": {
            "message": {
                "type": "string",
                "minLength": 1,
                "pattern": r"\S",
                "description": 'the question; "reset" starts a new session',
            },
            "user": USER_NAME,
            "session": {**ID, "description": "ask in this session (own or public) instead"},
        },
        "example": {"message": "Who are you?", "user": "shiyemin"},
    },
    "ChatResponse": {
        "type": "object",
        "required": ["response", "session_id", "usage"],
        "properties": {
            "response": {"type": "string"},
            "session_id": {"type": "integer"},
            "message_id": NULLABLE_INT,
            "model": NULLABLE_STRING,
            "finish_reason": NULLABLE_STRING,
            "usage": _ref("Usage"),
            "history_trimmed": {"type": "integer", "description": "older turns left out"},
            "reset": {"type": "boolean"},
        },
    },
    "User": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "user": {"type": "string", "description": "the name API callers use"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["local", "discord", "api"]},
            "status": {"type": "string", "enum": ["new", "active", "disabled"]},
            "model": NULLABLE_STRING,
            "current_session_id": NULLABLE_INT,
            "system_msg": NULLABLE_STRING,
            "show_public": {"type": "boolean"},
            "attach": {"type": "boolean"},
            "max_tokens": {"type": "integer"},
            "temperature": {"type": "number"},
            "created": {"type": "string"},
            "updated": {"type": "string"},
            "modified": {"type": "string"},
        },
    },
    "UserPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"\S"},
            "system_msg": NULLABLE_STRING,
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "show_public": {"type": "boolean"},
            "attach": {"type": "boolean"},
            "model": {**NULLABLE_STRING, "description": "default model of new sessions"},
            "status": {"type": "string", "enum": ["new", "active", "disabled"]},
            "current_session": {**ID, "description": "switch to this session (becomes active)"},
        },
    },
    "Session": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "model": NULLABLE_STRING,
            "system_msg": NULLABLE_STRING,
            "public": {"type": "boolean"},
            "origin": {"type": "string"},
            "creator_id": {"type": "integer"},
            "creator": NULLABLE_STRING,
            "message_count": {"type": "integer"},
            "forked_from_id": NULLABLE_INT,
            "created": {"type": "string"},
            "updated": {"type": "string"},
            "modified": {"type": "string"},
        },
    },
    "SessionCreate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
            "model": {"type": "string"},
            "system_msg": NULLABLE_STRING,
            "public": {"type": "boolean"},
            "current": {"type": "boolean", "description": "make it the user's current session"},
        },
    },
    "SessionPatch": {
        "type": "object",
        "additionalProperties": False,
        "required": ["user"],
        "properties": {
            "user": {**USER_NAME, "description": "the acting user (or ?user=)"},
            "title": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
            "public": {"type": "boolean"},
            "model": {"type": "string"},
            "system_msg": {**NULLABLE_STRING, "description": "null clears it"},
        },
    },
    "SessionList": {
        "type": "object",
        "properties": {
            "sessions": {"type": "array", "items": _ref("Session")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "current_session_id": NULLABLE_INT,
        },
    },
    "Message": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "session_id": {"type": "integer"},
            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
            "content": {"type": "string"},
            "author_id": NULLABLE_INT,
            "author": NULLABLE_STRING,
            "status": {
                "type": "string",
                "enum": ["complete", "streaming", "interrupted", "failed"],
            },
            "model": NULLABLE_STRING,
            "created": {"type": "string"},
            "tokens_in": NULLABLE_INT,
            "tokens_out": NULLABLE_INT,
            "latency_ms": NULLABLE_INT,
            "finish_reason": NULLABLE_STRING,
            "error": NULLABLE_STRING,
        },
    },
    "SessionPage": {
        "type": "object",
        "properties": {
            "session": _ref("Session"),
            "messages": {"type": "array", "items": _ref("Message")},
            "has_more": {"type": "boolean"},
            "next_before": {**NULLABLE_INT, "description": "pass as ?before= for older ones"},
        },
    },
    "Deleted": {
        "type": "object",
        "properties": {"deleted": {"type": "boolean"}, "id": {"type": "integer"}},
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": {
                "type": "string",
                "description": "provider/model or alias; default: "
                "the session's or the configured default",
            },
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {
                            "type": "string",
                            "enum": ["system", "developer", "user", "assistant"],
                        },
                        "content": {
                            "oneOf": [
                                {"type": "string"},
                                {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "text"],
                                        "properties": {
                                            "type": {"type": "string", "enum": ["text"]},
                                            "text": {"type": "string"},
                                        },
                                    },
                                },
                            ]
                        },
                    },
                },
            },
            "stream": {"type": "boolean"},
            "stream_options": {
                "type": "object",
                "properties": {"include_usage": {"type": "boolean"}},
            },
            "user": {**USER_NAME, "description": "the mschat user (default api.default_user)"},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "max_completion_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "n": {"type": "integer", "enum": [1]},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["chat.completion"]},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "message": {
                            "type": "object",
                            "properties": {
                                "role": {"type": "string"},
                                "content": {"type": "string"},
                            },
                        },
                        "finish_reason": {"type": "string"},
                    },
                },
            },
            "usage": _ref("Usage"),
        },
    },
    "ModelList": {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"type": "string"},
                        "created": {"type": "integer"},
                        "owned_by": {"type": "string"},
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"type": "string"}, "version": {"type": "string"}},
    },
}

SESSION_HEADER_PARAM = {
    "name": "X-Mschat-Session",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
    "description": "continue this session: only the trailing user message is appended",
}


def _paths() -> dict[str, Any]:
    sse_stream = {
        "description": "Server-sent events: start, one delta per piece, then done or error",
        "content": {SSE: {"schema": _ref("ServerSentEvent")}},
    }
    session_header = {
        "X-Mschat-Session": {"schema": {"type": "string"}, "description": "the session used"}
    }
    return {
        "/chat": {
            "post": {
                "operationId": "chat",
                "summary": "Ask as a user (the seed's API); 'reset' starts a new session",
                "requestBody": _body(_ref("ChatRequest")),
                "responses": {
                    "200": _json(_ref("ChatResponse"), "The reply"),
                    **_errors(400, 401, 403, 404, 413, 429, 502),
                },
            }
        },
        "/chat-stream": {
            "post": {
                "operationId": "chatStream",
                "summary": "Ask as a user, streamed: events start, delta (one per piece), "
                "then done or error",
                "requestBody": _body(_ref("ChatRequest")),
                "responses": {"200": sse_stream, **_errors(400, 401, 403, 404, 413)},
            }
        },
        "/users/{user}": {
            "parameters": [USER_PATH],
            "get": {
                "operationId": "getUser",
                "summary": "A user's settings",
                "responses": {"200": _json(_ref("User"), "The user"), **_errors(400, 401)},
            },
            "patch": {
                "operationId": "patchUser",
                "summary": "Change a user's settings",
                "requestBody": _body(_ref("UserPatch")),
                "responses": {
                    "200": _json(_ref("User"), "The user"),
                    **_errors(400, 401, 403, 404, 413),
                },
            },
        },
        "/users/{user}/sessions": {
            "parameters": [USER_PATH],
            "get": {
                "operationId": "listSessions",
                "summary": "The user's sessions, most recent first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**31},
                    },
                    {
                        "name": "include_public",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "also others' public sessions (default: show_public)",
                    },
                ],
                "responses": {"200": _json(_ref("SessionList"), "Sessions"), **_errors(400, 401)},
            },
            "post": {
                "operationId": "createSession",
                "summary": "A new private session",
                "requestBody": _body(_ref("SessionCreate"), required=False),
                "responses": {
                    "201": _json(_ref("Session"), "The session"),
                    **_errors(400, 401, 413),
                },
            },
        },
        "/sessions/{id}": {
            "parameters": [ID_PATH],
            "get": {
                "operationId": "getSession",
                "summary": "A session and a page of its messages (newest page first)",
                "parameters": [
                    USER_QUERY,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "schema": ID,
                        "description": "only messages older than this message id",
                    },
                ],
                "responses": {
                    "200": _json(_ref("SessionPage"), "The session"),
                    **_errors(400, 401, 403, 404),
                },
            },
            "patch": {
                "operationId": "patchSession",
                "summary": "Rename, set public, model or system message (creator only)",
                "requestBody": _body(_ref("SessionPatch")),
                "responses": {
                    "200": _json(_ref("Session"), "The session"),
                    **_errors(400, 401, 403, 404, 413),
                },
            },
            "delete": {
                "operationId": "deleteSession",
                "summary": "Delete a session and its messages (creator only)",
                "parameters": [USER_QUERY],
                "responses": {
                    "200": _json(_ref("Deleted"), "Deleted"),
                    **_errors(400, 401, 403, 404),
                },
            },
        },
        "/v1/chat/completions": {
            "post": {
                "operationId": "createChatCompletion",
                "summary": "OpenAI-compatible chat completion (stream or not)",
                "parameters": [SESSION_HEADER_PARAM],
                "requestBody": _body(_ref("ChatCompletionRequest")),
                "responses": {
                    "200": {
                        "description": "A completion (JSON) or chunks (SSE when stream)",
                        "headers": session_header,
                        "content": {
                            JSON: {"schema": _ref("ChatCompletion")},
                            SSE: {"schema": _ref("ServerSentEvent")},
                        },
                    },
                    **_errors(400, 401, 403, 404, 413, 429, 502),
                },
            }
        },
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "summary": "Configured models, the default first",
                "responses": {"200": _json(_ref("ModelList"), "Models"), **_errors(401)},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3 document",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    **_errors(401),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness (no token needed)",
                "security": [],
                "responses": {"200": _json(_ref("Health"), "Healthy")},
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document describing every endpoint."""
    return {
        "openapi": "3.0.3",
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
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "paths": _paths(),
    }
