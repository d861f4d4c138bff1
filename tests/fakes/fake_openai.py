"""A loopback fake of the OpenAI chat-completions API, on aiohttp.

It speaks the real wire protocol (the official ``openai`` SDK is a client of it
in the tests), so mschat's own httpx client, the API server and benchmarks can
all be pointed at it with a ``base_url``.

Behaviour is set per server (constructor arguments / attributes) and per
request, by a queue of :class:`Script` items consumed one per
``POST /chat/completions`` (``push``/``inject``), or by a ``"fake"`` object in
the request body (``extra_body={"fake": {...}}`` with the openai SDK).

Faults (``Script.fault``): any HTTP status as a string (``"429"`` with
``retry-after-ms``/``retry-after`` headers, ``"500"``, ``"503"``, ``"401"``,
``"403"``, ``"404"`` model-not-found, ``"400"``), ``"context_length"`` (400
``context_length_exceeded``), ``"hang"`` (never answer until the server
stops), ``"stall"`` (send ``after_chunks`` chunks, then hang),
``"disconnect"`` (send ``after_chunks`` chunks, then drop the connection),
``"no_finish"`` (the stream ends without a finish reason; ``[DONE]`` is sent
unless ``done=False``) and ``"stream_error"`` (an ``error`` object inside the
SSE stream after ``after_chunks`` chunks).

Misbehaviours of servers that are not quite OpenAI-compatible, all with status
200: ``"surrogate"`` (a chunk whose content is the escape ``"\ud83d"``, half
an emoji, after ``after_chunks`` chunks), ``"bad_utf8"`` (a chunk with invalid
UTF-8 bytes in its content), ``"bad_content"`` (a ``delta.content`` that is
``Script.content``: a number, object or list), ``"not_a_chunk"`` (an event
whose JSON is ``Script.content``, by default an object without ``choices``),
``"html"`` (a ``text/html`` page) and ``"raw"`` (``Script.raw`` as the body,
with ``Script.content_type``).

An error fault with ``echo=True`` quotes the request in its message (method,
URL with its query, headers), as careless servers and proxies do. A server made
with ``serve_models=False`` has no ``/models`` endpoint (404), and
``model_contexts`` adds ``max_model_len`` (as vLLM does) to ``/models`` entries.

``POST /v1/moderations`` answers as OpenAI's moderation endpoint: an input is
flagged when it contains one of the words of ``flagged`` (``flag("word",
category="violence")``); ``moderation_fault`` (an HTTP status as a string) makes
it fail instead; its request bodies are kept in ``moderations``.

Tool calls: ``Script.tool_calls`` (``push(tool_calls=[("echo", {"text": "hi"})])``,
each a ``(name, arguments)`` pair with arguments a dict or raw JSON text) makes
the answer ask for those calls, streamed as OpenAI does (an id and name first,
then the arguments in fragments, finish reason ``tool_calls``). A request whose
last messages are ``tool`` results, without a scripted reply, is answered
``Tool results: <each result> | <…>``, so a test sees the round trip.

Run standalone: ``python -m tests.fakes.fake_openai --port 8089``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import dataclasses
import itertools
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DEFAULT_MODELS = ("fake-model", "fake-large")
PANGRAM = "The quick brown fox jumps over the lazy dog. "
#: faults that happen inside a started SSE stream (the others replace the response)
STREAM_FAULTS = (
    "stall",
    "disconnect",
    "no_finish",
    "stream_error",
    "surrogate",
    "bad_utf8",
    "bad_content",
    "not_a_chunk",
)
#: faults whose 200 answer is not an event stream at all
BODY_FAULTS = ("html", "raw")
#: the lone high surrogate "surrogate" sends, as JSON escapes it
HALF_EMOJI = "\ud83d"
#: what "bad_utf8" puts inside a chunk's content: a truncated sequence and a stray byte
BAD_UTF8 = b"caf\xc3 \xff!"


@dataclass
class Script:
    """How to answer one chat-completions request (``None`` = server default)."""

    fault: str | None = None
    reply: str | None = None
    reply_length: int | None = None  # characters; the reply is repeated/cut to fit
    chunk_size: int | None = None  # characters per SSE chunk
    delay: float | None = None  # seconds before each content chunk
    finish_reason: str | None = None
    # fault parameters
    status: int | None = None
    message: str | None = None
    retry_after_ms: int | None = 50
    retry_after: str | None = None
    after_chunks: int = 2
    done: bool = True
    echo: bool = False  # error faults: quote the request in the message
    content: Any = 42  # "bad_content": the delta.content; "not_a_chunk": the event's JSON
    raw: bytes = b""  # "raw": the whole response body
    content_type: str = "text/plain"  # "raw": its content type
    #: ask for these tool calls: (function name, arguments as a dict or JSON text)
    tool_calls: list[tuple[str, Any]] | None = None


@dataclass
class RecordedCall:
    """One HTTP request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float  # time.monotonic() on arrival
    query: str = ""  # the query string, without "?"


@dataclass
class _Reply:
    """A fully resolved answer: text, chunking and the reason it ends."""

    text: str
    chunk_size: int
    delay: float
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


# ---- pure helpers ---------------------------------------------------------------


def fake_tokens(text: str) -> int:
    """Deterministic token estimate used for usage figures (≈ 4 chars a token)."""
    return math.ceil(len(text) / 4)


def content_text(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of content parts); an image
    part reads ``[image image/png 216 bytes]``, so an echo shows what arrived."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(p) for p in content if isinstance(p, dict))
    return ""


def _part_text(part: dict[str, Any]) -> str:
    if part.get("type") != "image_url":
        return str(part.get("text", ""))
    image = image_of(part)
    return f" [image {image[0]} {len(image[1])} bytes]" if image else " [image ?]"


def image_of(part: dict[str, Any]) -> tuple[str, bytes] | None:
    """The type and bytes of an ``image_url`` part with a base64 data URL, else None."""
    url = (part.get("image_url") or {}).get("url") if isinstance(part, dict) else None
    match = re.fullmatch(r"data:(image/(?:png|jpeg|webp|gif));base64,([A-Za-z0-9+/=]+)", url or "")
    if match is None:
        return None
    try:
        return match.group(1), base64.b64decode(match.group(2), validate=True)
    except ValueError:
        return None


def image_refusal(messages: list[Any], model: str, sees: bool) -> str | None:
    """What OpenAI answers a request whose image parts are malformed or sent to a model
    that does not see, else None."""
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            if not sees:
                return (
                    "Invalid content type. image_url is only supported by certain models "
                    f"({model})."
                )
            if image_of(part) is None:
                return "Invalid image_url: expected a base64 data URL of a PNG, JPEG, WebP or GIF."
    return None


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Usage figure for the prompt: content tokens plus a fixed cost per message."""
    return sum(fake_tokens(content_text(m.get("content"))) + 3 for m in messages) + 3


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The content of the last user message, or ``""``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def tool_results(messages: list[dict[str, Any]]) -> list[str] | None:
    """The contents of the ``tool`` messages ending the conversation, or None."""
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, content_text(message.get("content")))
    return results or None


def tool_call_deltas(calls: list[tuple[str, Any]], size: int) -> list[dict[str, Any]]:
    """Streamed ``delta.tool_calls`` for ``calls``: id and name, then argument fragments."""
    deltas = []
    for index, (name, arguments) in enumerate(calls):
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        head = {"index": index, "id": f"call_{index}_{name}", "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
        for piece in chunk_text(text, size) if text else []:
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


def chunk_text(text: str, size: int) -> list[str]:
    """Split ``text`` into pieces of ``size`` characters."""
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def error_body(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """An error object exactly as OpenAI sends it."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# ---- the server -----------------------------------------------------------------


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 (use ``async with`` or start/stop)."""

    def __init__(
        self,
        *,
        models: list[str] | tuple[str, ...] = DEFAULT_MODELS,
        reply: str | None = None,
        reply_fn: Callable[[dict[str, Any]], str] | None = None,
        reply_length: int | None = None,
        chunk_size: int = 4,
        delay: float = 0.0,
        api_key: str | None = None,
        context_window: int | None = None,
        accept_any_model: bool = False,
        serve_models: bool = True,
        model_contexts: dict[str, int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        vision_models: Collection[str] | None = None,
    ) -> None:
        self.models = list(models)
        #: models that take image parts (None: every model); others get OpenAI's 400
        self.vision_models = None if vision_models is None else set(vision_models)
        self.serve_models = serve_models  # False: GET /models answers 404, like some servers
        self.model_contexts = dict(model_contexts or {})
        #: when set, ``GET /models`` answers only once another thread sets this event
        self.models_gate: threading.Event | None = None
        self.reply = reply
        self.reply_fn = reply_fn
        self.reply_length = reply_length
        self.chunk_size = chunk_size
        self.delay = delay
        self.api_key = api_key  # when set, requests need "Authorization: Bearer <key>"
        self.context_window = context_window  # when set, longer prompts get a 400
        self.accept_any_model = accept_any_model
        self.host = host
        self.port = port
        self.scripts: collections.deque[Script] = collections.deque()
        self.sticky: Script | None = None  # applies to every request when the queue is empty
        self.requests: list[dict[str, Any]] = []  # chat-completions request bodies
        self.calls: list[RecordedCall] = []  # every request, any path
        #: words that get a moderation input flagged, with the category they flag
        self.flagged: dict[str, str] = {}
        self.moderation_fault: str | None = None
        self.moderations: list[dict[str, Any]] = []  # moderation request bodies
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self._cond = threading.Condition()
        self._ids = itertools.count(1)

    # -- scripting ---------------------------------------------------------------

    def push(self, script: Script | None = None, **fields: Any) -> None:
        """Queue a script for the next chat request (``push(reply="hi")``)."""
        self.scripts.append(script or Script(**fields))

    def inject(self, fault: str, *, times: int | None = 1, **fields: Any) -> None:
        """Queue ``fault`` for the next ``times`` requests (``None``: every request)."""
        script = Script(fault=fault, **fields)
        if times is None:
            self.sticky = script
            return
        for _ in range(times):
            self.scripts.append(dataclasses.replace(script))

    def clear_faults(self) -> None:
        """Forget queued scripts and the sticky fault."""
        self.scripts.clear()
        self.sticky = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> str:
        """Listen on an ephemeral loopback port; return ``http://127.0.0.1:{port}/v1``."""
        self._closing = asyncio.Event()
        self._arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model:.+}", self._model)
        app.router.add_post("/v1/moderations", self._moderate)
        # handler_cancellation: a client that gives up (e.g. on "hang") frees its handler
        self._runner = web.AppRunner(
            app, shutdown_timeout=1.0, handler_cancellation=True, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        """Release hanging handlers and close the server."""
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- waiting on conditions (never sleep in tests) -------------------------------

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` chat requests have arrived (same loop)."""
        assert self._arrived is not None, "server not started"
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def wait_for_requests_sync(self, count: int, timeout: float = 10.0) -> None:
        """Wait from another thread until ``count`` chat requests have arrived."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests arrived")

    # -- handlers ----------------------------------------------------------------

    def _record(self, request: web.Request, body: Any) -> None:
        self.calls.append(
            RecordedCall(
                request.method,
                request.path,
                dict(request.headers),
                body,
                time.monotonic(),
                request.query_string,
            )
        )

    def _authorized(self, request: web.Request) -> bool:
        return (
            self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"
        )

    @property
    def model_calls(self) -> list[RecordedCall]:
        """Every ``GET /models`` request received."""
        return [call for call in self.calls if call.path.endswith("/models")]

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self._record(request, None)
        if not self.serve_models:
            return web.Response(status=404, text="404 page not found")
        if not self._authorized(request):
            return _auth_error()
        if self.models_gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.models_gate.wait, 30)
        data = [_model_object(m, self.model_contexts.get(m)) for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _model(self, request: web.Request) -> web.StreamResponse:
        self._record(request, None)
        name = request.match_info["model"]
        if name not in self.models:
            return _model_not_found(name)
        return web.json_response(_model_object(name))

    def flag(self, word: str, *, category: str = "harassment") -> None:
        """Have moderation flag every input containing ``word`` (case-insensitive)."""
        self.flagged[word.lower()] = category

    async def _moderate(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self._record(request, body)
        if not self._authorized(request):
            return _auth_error()
        if self.moderation_fault is not None:
            status = int(self.moderation_fault)
            return web.json_response(
                {"error": {"message": f"moderation failed ({status})", "type": "server_error"}},
                status=status,
            )
        if not isinstance(body, dict) or "input" not in body:
            return web.json_response(
                {"error": {"message": "'input' is required", "type": "invalid_request_error"}},
                status=400,
            )
        self.moderations.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        results = []
        for item in inputs:
            text = content_text(item).lower()
            hits = {category for word, category in self.flagged.items() if word in text}
            categories = {name: name in hits for name in sorted({*self.flagged.values(), *hits})}
            results.append(
                {
                    "flagged": bool(hits),
                    "categories": categories,
                    "category_scores": {
                        name: 0.99 if hit else 0.01 for name, hit in categories.items()
                    },
                }
            )
        model = body.get("model") or "omni-moderation-latest"
        return web.json_response(
            {"id": f"modr-fake{next(self._ids)}", "model": model, "results": results}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self._record(request, body)
        if not isinstance(body, dict):
            return web.json_response(
                error_body("We could not parse the JSON body.", "invalid_request_error", None),
                status=400,
            )
        self.requests.append(body)
        self._signal_arrival()
        script = self._script_for(body)
        if script.fault in BODY_FAULTS:
            return _body_fault(script)
        if script.fault is not None and script.fault not in STREAM_FAULTS:
            return await self._fault_response(request, script, body)
        refusal = self._refuse(request, body)
        if refusal is not None:
            return refusal
        reply = self._resolve_reply(body, script)
        if not body.get("stream"):
            return web.json_response(self._completion(body, reply))
        return await self._stream(request, body, reply, script)

    def _signal_arrival(self) -> None:
        assert self._arrived is not None
        self._arrived.set()
        with self._cond:
            self._cond.notify_all()

    def _script_for(self, body: dict[str, Any]) -> Script:
        """The queued script, else the sticky one, merged with the body's "fake" object."""
        if self.scripts:
            script = self.scripts.popleft()
        else:
            script = dataclasses.replace(self.sticky) if self.sticky else Script()
        overrides = body.get("fake")
        if isinstance(overrides, dict):
            script = dataclasses.replace(script, **overrides)
        return script

    def _refuse(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse | None:
        """The error a real server would give for this request, if any."""
        if not self._authorized(request):
            return _auth_error()
        model = body.get("model")
        if not isinstance(model, str) or not (self.accept_any_model or model in self.models):
            return _model_not_found(str(model))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return web.json_response(
                error_body(
                    "'messages' must be a non-empty array.",
                    "invalid_request_error",
                    None,
                    "messages",
                ),
                status=400,
            )
        sees = self.vision_models is None or model in self.vision_models
        refused = image_refusal(messages, model, sees)
        if refused is not None:
            return web.json_response(
                error_body(refused, "invalid_request_error", None, "messages"), status=400
            )
        if self.context_window is not None and prompt_tokens(messages) > self.context_window:
            return _context_length_error(self.context_window, prompt_tokens(messages))
        return None

    async def _fault_response(
        self, request: web.Request, script: Script, body: dict[str, Any]
    ) -> web.StreamResponse:
        """Answer with an HTTP error, or hang until the server stops."""
        if script.fault == "hang":
            assert self._closing is not None
            await self._closing.wait()
            return web.Response(status=503, text="fake server stopping")
        if script.fault == "context_length":
            return _context_length_error(8192, 9000)
        status = script.status or int(str(script.fault))
        if script.echo:
            echoed = {"method": request.method, "url": str(request.url), **request.headers}
            script = dataclasses.replace(script, message=f"bad request: {json.dumps(echoed)}")
        return _status_error(status, script, str(body.get("model")))

    def _resolve_reply(self, body: dict[str, Any], script: Script) -> _Reply:
        messages = body["messages"]
        results = tool_results(messages)
        if script.reply is not None:
            text = script.reply
        elif script.tool_calls:
            text = ""
        elif results is not None:
            text = "Tool results: " + " | ".join(results)
        elif self.reply_fn is not None:
            text = self.reply_fn(body)
        elif self.reply is not None:
            text = self.reply
        else:
            length = script.reply_length or self.reply_length
            text = PANGRAM if length else f"Echo: {last_user_text(messages)}"
        length = script.reply_length if script.reply_length is not None else self.reply_length
        if length is not None and text:
            text = (text * (length // len(text) + 1))[:length]
        finish = script.finish_reason or ("tool_calls" if script.tool_calls else "stop")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and fake_tokens(text) > limit:
            text, finish = text[: limit * 4], "length"
        return _Reply(
            text=text,
            chunk_size=script.chunk_size or self.chunk_size,
            delay=script.delay if script.delay is not None else self.delay,
            finish_reason=finish,
            prompt_tokens=prompt_tokens(messages),
            completion_tokens=fake_tokens(text),
        )

    def _completion(self, body: dict[str, Any], reply: _Reply) -> dict[str, Any]:
        """A non-streaming ``chat.completion`` object."""
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": _usage(reply),
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], reply: _Reply, script: Script
    ) -> web.StreamResponse:
        """Stream ``reply`` as SSE ``chat.completion.chunk`` events, applying stream faults."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk = _ChunkMaker(f"chatcmpl-fake{next(self._ids)}", body["model"], include_usage)
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        await _send(resp, chunk.make({"role": "assistant", "content": "", "refusal": None}))
        pieces = chunk_text(reply.text, reply.chunk_size)
        for index, piece in enumerate(pieces):
            if script.fault is not None and index == script.after_chunks:
                return await self._stream_fault(request, resp, script, chunk, reply)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            await _send(resp, chunk.make({"content": piece}))
        for delta in tool_call_deltas(script.tool_calls or [], reply.chunk_size):
            await _send(resp, chunk.make(delta))
        if script.fault is not None:
            return await self._stream_fault(request, resp, script, chunk, reply)
        return await self._finish_stream(resp, chunk, reply, skip=len(pieces))

    async def _finish_stream(
        self, resp: web.StreamResponse, chunk: _ChunkMaker, reply: _Reply, skip: int = 0
    ) -> web.StreamResponse:
        """The rest of the reply after ``skip`` chunks, the finish reason, usage and [DONE]."""
        for piece in chunk_text(reply.text, reply.chunk_size)[skip:]:
            await _send(resp, chunk.make({"content": piece}))
        await _send(resp, chunk.make({}, reply.finish_reason))
        if chunk.include_usage:
            await _send(resp, chunk.usage(_usage(reply)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    @staticmethod
    async def _send_misbehaviour(
        resp: web.StreamResponse, chunk: _ChunkMaker, script: Script
    ) -> None:
        """One event of a not-quite-compatible server, in the middle of a reply."""
        if script.fault == "surrogate":
            # json.dumps escapes a lone surrogate as \ud83d, exactly what such servers send
            await _send(resp, chunk.make({"content": HALF_EMOJI}))
        elif script.fault == "bad_utf8":
            data = json.dumps(chunk.make({"content": "@@"}), separators=(",", ":")).encode()
            await resp.write(b"data: " + data.replace(b"@@", BAD_UTF8) + b"\n\n")
        elif script.fault == "bad_content":
            await _send(resp, chunk.make({"content": script.content}))
        elif script.content == 42:  # not_a_chunk, by default an object without choices
            await _send(resp, {"message": "hello", "model": chunk.model})
        else:
            await _send(resp, script.content)

    async def _stream_fault(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        script: Script,
        chunk: _ChunkMaker,
        reply: _Reply,
    ) -> web.StreamResponse:
        if script.fault == "stall":
            assert self._closing is not None
            await self._closing.wait()
        elif script.fault == "disconnect":
            # close the socket mid-body: the client sees an incomplete chunked read
            assert request.transport is not None
            request.transport.close()
            return resp
        elif script.fault == "stream_error":
            message = script.message or "The server had an error while processing your request."
            await _send(resp, error_body(message, "server_error", None))
        elif script.fault in ("surrogate", "bad_utf8", "bad_content", "not_a_chunk"):
            await self._send_misbehaviour(resp, chunk, script)
            return await self._finish_stream(resp, chunk, reply, script.after_chunks)
        elif script.done:  # no_finish
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


class _ChunkMaker:
    """Builds ``chat.completion.chunk`` objects sharing one id and timestamp."""

    def __init__(self, id_: str, model: str, include_usage: bool) -> None:
        self.id, self.model, self.include_usage = id_, model, include_usage
        self.created = int(time.time())

    def _base(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if self.include_usage:
            obj["usage"] = None  # OpenAI sends "usage": null on every chunk but the last
        return obj

    def make(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """A chunk with one choice."""
        return self._base(
            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The final usage chunk (``choices: []``)."""
        obj = self._base([])
        obj["usage"] = usage
        return obj


async def _send(resp: web.StreamResponse, obj: Any) -> None:
    await resp.write(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


def _usage(reply: _Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _model_object(name: str, context: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"}
    if context is not None:
        obj["max_model_len"] = context
    return obj


def _body_fault(script: Script) -> web.Response:
    """A 200 answer that is not an event stream: an HTML page or raw bytes."""
    if script.fault == "html":
        page = (
            b"<!doctype html><html><head><title>Welcome</title></head><body>It works!</body></html>"
        )
        return web.Response(body=page, content_type="text/html")
    return web.Response(body=script.raw, headers={"Content-Type": script.content_type})


def _auth_error() -> web.Response:
    body = error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    return web.json_response(body, status=401)


def _model_not_found(model: str) -> web.Response:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return web.json_response(
        error_body(message, "invalid_request_error", "model_not_found"), status=404
    )


def _context_length_error(window: int, used: int) -> web.Response:
    message = (
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {used} tokens. Please reduce the length of the messages."
    )
    body = error_body(message, "invalid_request_error", "context_length_exceeded", "messages")
    return web.json_response(body, status=400)


def _status_error(status: int, script: Script, model: str) -> web.Response:
    """An OpenAI-style error response for an arbitrary status."""
    if status == 429:
        headers = {}
        if script.retry_after_ms is not None:
            headers["retry-after-ms"] = str(script.retry_after_ms)
        if script.retry_after is not None:
            headers["retry-after"] = script.retry_after
        message = script.message or "Rate limit reached for requests. Please try again shortly."
        return web.json_response(
            error_body(message, "requests", "rate_limit_exceeded"), status=429, headers=headers
        )
    if status in (401, 403):
        message = script.message or "Incorrect API key provided."
        return web.json_response(
            error_body(message, "invalid_request_error", "invalid_api_key"), status=status
        )
    if status == 404:
        return _model_not_found(model)
    if status >= 500:
        message = (
            script.message
            or "The server had an error while processing your request. Sorry about that!"
        )
        return web.json_response(error_body(message, "server_error", None), status=status)
    message = script.message or "Invalid request."
    return web.json_response(error_body(message, "invalid_request_error", None), status=status)


# ---- a server on its own thread (for sync tests and subprocesses) ---------------------


class FakeOpenAIThread:
    """A :class:`FakeOpenAI` running on its own event loop in a background thread.

    Attribute access (``inject``, ``push``, ``requests``, ``models``...) is
    forwarded to the wrapped server; scripting from the test thread is safe.
    """

    def __init__(self, **options: Any) -> None:
        self.server = FakeOpenAI(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "server":  # not set yet: avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.server, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # settings such as ``reply`` or ``delay`` belong to the wrapped server
        if name not in ("server", "_loop", "_thread") and hasattr(self.server, name):
            setattr(self.server, name, value)
        else:
            object.__setattr__(self, name, value)

    def start(self, timeout: float = 10.0) -> str:
        """Start the loop thread and the server; return the base URL."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.server.start(), loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server, the loop and the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
            self._loop = self._thread = None

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        """Block until at least ``count`` chat requests have arrived."""
        self.server.wait_for_requests_sync(count, timeout)

    def __enter__(self) -> FakeOpenAIThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- standalone --------------------------------------------------------------


def start_process(cwd: str | os.PathLike[str], *, chunk_size: int = 4) -> tuple[Any, str]:
    """Run the fake in its own process (benchmarks); returns the process and its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.fake_openai",
            "--port",
            "0",
            "--chunk-size",
            str(chunk_size),
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise SystemExit(f"the fake OpenAI server did not start: {url!r}")
    return process, url


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reply", default=None, help="fixed reply (default: echo the question)")
    parser.add_argument("--reply-length", type=int, default=None, help="reply length in characters")
    parser.add_argument("--chunk-size", type=int, default=4, help="characters per SSE chunk")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each chunk")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="comma-separated model ids"
    )
    parser.add_argument("--any-model", action="store_true", help="accept any model name")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    server = FakeOpenAI(
        models=[m for m in args.models.split(",") if m],
        reply=args.reply,
        reply_length=args.reply_length,
        chunk_size=args.chunk_size,
        delay=args.delay,
        api_key=args.api_key,
        accept_any_model=args.any_model,
        host=args.host,
        port=args.port,
    )
    url = await server.start()
    print(url, flush=True)  # benchmarks read the base URL from the first line
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tests.fakes.fake_openai``."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
