"""Client for the OpenAI chat-completions wire protocol, over httpx.

Works with OpenAI, Ollama, vLLM, LM Studio, OpenRouter, llama.cpp servers and
anything else that speaks ``POST {base_url}/chat/completions`` with SSE.

The ``openai`` SDK is deliberately not used: importing it costs ~1 s, most of a
one-shot ``mschat ask``. This module imports nothing heavier than httpx.

Layout: pure pieces (``build_payload``, ``SSEDecoder``, ``StreamState``,
``classify_http_error``, ``classify_transport_error``, ``retry_delay``,
``parse_retry_after``) and a thin I/O layer in :class:`OpenAICompatProvider`.

Secrets: a base URL may carry credentials (``https://user:pw@host/v1``,
``?api_key=…``) besides the API key. Every message and log line this module
produces goes through :class:`Target`, which shows the URL redacted and masks
those secrets wherever a server's answer or an exception quotes them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import socket
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mschat import __version__
from mschat.core.errors import ProviderError
from mschat.providers._httpx import httpx
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    Moderation,
    ProviderEvent,
    RetryChunk,
    TextChunk,
    ToolCall,
    ToolCallsChunk,
    UsageChunk,
)
from mschat.redact import SECRET_PARAMS, redact_text, redact_url

log = logging.getLogger(__name__)

#: statuses worth retrying: rate limits, timeouts and transient server errors
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
#: a server's retry-after is honoured up to this many seconds; longer waits use backoff
MAX_HONOURED_RETRY_AFTER = 60.0
_DETAIL_LIMIT = 300


# ---- failures --------------------------------------------------------------------


class ProviderFailure(Exception):
    """One failed attempt, before it becomes the user-facing ``ProviderError``.

    The message is ``head`` + `` after N attempts`` (when retried) + ``: detail``,
    e.g. "server error 500 from openai after 4 attempts: overloaded".
    """

    def __init__(
        self,
        kind: str,
        head: str,
        detail: str = "",
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(head)
        self.kind = kind
        self.head = head
        self.detail = detail
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def message(self, attempts: int = 1) -> str:
        """The user-facing message, mentioning the attempts when there were several."""
        text = self.head
        if attempts > 1:
            text += f" after {attempts} attempts"
        if self.detail:
            text += f": {self.detail}"
        return text

    def to_error(self, attempts: int = 1) -> ProviderError:
        """The ``ProviderError`` to raise after ``attempts`` attempts."""
        return ProviderError(
            self.message(attempts),
            kind=self.kind,
            status=self.status,
            retryable=self.retryable,
            retry_after=self.retry_after,
        )


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every unpaired UTF-16 surrogate (half an emoji) as U+FFFD.

    JSON may escape half of a surrogate pair (``"\\ud83d"``); Python keeps it as
    a lone surrogate, which no UTF-8 encoder (a terminal, SQLite) accepts.
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def url_secrets(url: str) -> list[str]:
    """The credentials inside ``url``: its password and secret query values."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    values = [password] if password else []
    values += [v for k, v in parse_qsl(parts.query) if k.lower() in SECRET_PARAMS and v]
    return values


class Target:
    """What a request is aimed at; builds messages and keeps every secret out of them."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        model: str | None,
        api_key: str | None,
        api_key_env: str | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = redact_url(base_url)  # the only form any message shows
        self.model = model
        self._secrets = [api_key, *url_secrets(base_url)]
        self.api_key_env = api_key_env

    def __repr__(self) -> str:
        return f"<Target {self.provider} {self.base_url} model={self.model!r}>"

    def redact(self, text: str) -> str:
        """``text`` without secrets or lone surrogates, shortened to a readable length."""
        text = replace_lone_surrogates(redact_text(text, self._secrets))
        text = " ".join(text.split())
        return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"

    def key_hint(self) -> str:
        """Where the user sets this provider's key."""
        env = self.api_key_env or ("OPENAI_API_KEY" if self.provider == "openai" else None)
        setting = f"providers.{self.provider}.api_key"
        return f"set {env} or {setting}" if env else f"set {setting}"


# ---- pure helpers: request, SSE, classification, retry ----------------------------------


#: OpenAI reasoning models take max_completion_tokens and only the default temperature
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` is an OpenAI reasoning model (different sampling parameters)."""
    return model.lower().startswith(REASONING_PREFIXES)


def message_payload(message: ChatMessage) -> dict[str, Any]:
    """One message as the wire protocol has it (with its tool calls, or the call it answers)."""
    item: dict[str, Any] = {"role": message.role, "content": message.wire_content()}
    if message.tool_calls:
        item["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        item["tool_call_id"] = message.tool_call_id
    return item


def build_payload(request: ChatRequest, *, stream: bool = True) -> dict[str, Any]:
    """The JSON body of a chat-completions request."""
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": [message_payload(m) for m in request.messages],
        "stream": stream,
    }
    if request.tools:
        payload["tools"] = list(request.tools)
    if stream:
        payload["stream_options"] = {"include_usage": True}
    optional = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
        "user": request.user,
    }
    if is_reasoning_model(request.model):
        optional["max_completion_tokens"] = optional.pop("max_tokens")
        optional.pop("temperature")
    payload.update({k: v for k, v in optional.items() if v is not None})
    return payload


class LineSplitter:
    """Cuts a byte stream into text lines (httpx's own line iterator costs ~0.3 ms a reply).

    CR, LF and CRLF all end a line, as the SSE specification says.
    """

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The complete lines in ``chunk`` (with what was left of the previous one)."""
        data = self._rest + chunk
        hold = b""
        if data.endswith(b"\r"):  # maybe the first half of a CRLF: decide with the next chunk
            data, hold = data[:-1], b"\r"
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = data.split(b"\n")
        self._rest = rest + hold
        return [line.decode("utf-8", "replace") for line in lines]

    def close(self) -> list[str]:
        """The last line, if the stream did not end with a newline."""
        rest, self._rest = self._rest.rstrip(b"\r"), b""
        return [rest.decode("utf-8", "replace")] if rest else []


class SSEDecoder:
    """Turns the lines of a ``text/event-stream`` into event data strings."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """Consume one line; return the event's data when a blank line ends it."""
        if not line:
            return self.flush()
        if line.startswith(":"):  # comment / keep-alive
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None  # "event", "id" and "retry" fields carry nothing we use

    def flush(self) -> str | None:
        """Data of a pending event (the stream ended without a blank line)."""
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return data


def _loads_events(data: str) -> list[Any]:
    """Parse event data; tolerate servers that omit the blank line between events."""
    try:
        return [json.loads(data)]
    except ValueError:
        if "\n" not in data:
            raise
        return [json.loads(part) for part in data.split("\n") if part.strip()]


def error_detail(body: Any) -> str:
    """The human message inside an error body (OpenAI, Ollama, FastAPI shapes)."""
    if isinstance(body, (bytes, bytearray)):
        text = body.decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except ValueError:
            return text.strip()
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "detail", "error"):
                if isinstance(error.get(key), str):
                    return str(error[key])
        elif isinstance(error, str):
            return error
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    return str(body)


def _error_code(body: Any) -> str:
    """The ``error.code`` / ``error.type`` of an error body, lower-cased, or ``""``."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    return " ".join(str(error.get(k) or "") for k in ("code", "type")).lower()


_CONTEXT_WORDS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "too many tokens",
    "maximum context",
)


def classify_http_error(
    target: Target,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    path: str = "/chat/completions",
) -> ProviderFailure:
    """Turn an HTTP error response into a failure with a message a user understands."""
    detail = target.redact(error_detail(body))
    code = _error_code(body)
    name = target.provider
    if status == 429:
        if "insufficient_quota" in code:
            return ProviderFailure(
                "rate_limited",
                f"provider '{name}' says the account is out of quota (429)",
                detail,
                status=429,
            )
        return ProviderFailure(
            "rate_limited",
            f"rate limited by {name} (429)",
            detail,
            status=429,
            retryable=True,
            retry_after=parse_retry_after(headers),
        )
    if status >= 500:
        head = f"server error {status} from {name}"
        retry_after = parse_retry_after(headers)
        retryable = status in RETRY_STATUSES
        return ProviderFailure(
            "server", head, detail, status=status, retryable=retryable, retry_after=retry_after
        )
    if status == 408:
        head = f"provider '{name}' timed out (408)"
        return ProviderFailure("timeout", head, detail, status=408, retryable=True)
    if status == 401:
        return ProviderFailure(
            "auth",
            f"the API key for provider '{name}' was rejected (401); {target.key_hint()}",
            status=401,
        )
    if status == 403:
        return ProviderFailure(
            "auth",
            f"provider '{name}' refused access (403); check the API key ({target.key_hint()})",
            detail,
            status=403,
        )
    if status == 404:
        return _not_found(target, detail, code, path)
    lowered = f"{code} {detail}".lower()
    if status == 413 or (status == 400 and any(w in lowered for w in _CONTEXT_WORDS)):
        head = f"the conversation is too long for model '{target.model}' on '{name}' ({status})"
        return ProviderFailure("context_length", head, detail, status=status)
    head = f"provider '{name}' rejected the request ({status})"
    return ProviderFailure("bad_request", head, detail, status=status)


def _not_found(target: Target, detail: str, code: str, path: str) -> ProviderFailure:
    """A 404: an unknown model, or (no model-not-found body) probably a wrong base_url."""
    where = f"provider '{target.provider}' ({target.base_url})"
    if target.model is None:
        head = f"{where} has no {path} endpoint (404)"
        return ProviderFailure(
            "bad_request", head, "check base_url (it usually ends in /v1)", status=404
        )
    head = f"model '{target.model}' not found on {where}"
    if "model" in code or "model" in detail.lower():
        return ProviderFailure("model_not_found", head, status=404)
    hint = (
        f"the server answered 404 for {path}; "
        "check the model name and base_url (it usually ends in /v1)"
    )
    return ProviderFailure("model_not_found", head, hint, status=404)


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (anyio hides "connection refused" a few levels down)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connect_reason(exc: Exception) -> str:
    """A short reason for a failed connection: refused, DNS, or the raw text."""
    for cause in _exception_chain(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"host not found ({cause})"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    dns = ("name or service not known", "nodename nor servname", "getaddrinfo", "name resolution")
    if any(w in lowered for w in dns):
        return f"host not found ({text})"
    return text


def classify_transport_error(
    target: Target, exc: httpx.HTTPError, *, chars_received: int = 0, timeout: float | None = None
) -> ProviderFailure:
    """Turn an httpx exception into a failure (connect errors, timeouts, disconnects)."""
    where = f"provider '{target.provider}' at {target.base_url}"
    if isinstance(exc, httpx.ConnectTimeout):
        return ProviderFailure(
            "timeout", f"cannot reach {where}", "connection timed out", retryable=True
        )
    if isinstance(exc, httpx.TimeoutException):
        waited = f" for {timeout:g} s" if timeout else ""
        what = "mid-reply" if chars_received else "before answering"
        return ProviderFailure(
            "timeout",
            f"{where} timed out",
            f"no data{waited} {what} ({type(exc).__name__})",
            retryable=True,
        )
    if isinstance(exc, httpx.ConnectError):
        return ProviderFailure(
            "unreachable",
            f"cannot reach {where}",
            target.redact(_connect_reason(exc)),
            retryable=True,
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return ProviderFailure(
            "not_configured", f"{where} has an invalid base_url", target.redact(str(exc))
        )
    if isinstance(exc, httpx.DecodingError):
        return ProviderFailure(
            "bad_response", f"{where} sent an undecodable response", target.redact(str(exc))
        )
    if chars_received:
        head = f"lost the connection to {where} mid-reply (after {chars_received} characters)"
    else:
        head = f"lost the connection to {where}"
    return ProviderFailure(
        "unreachable", head, target.redact(str(exc) or type(exc).__name__), retryable=True
    )


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        with contextlib.suppress(ValueError):
            return max(0.0, float(value) / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_delay(
    failure: ProviderFailure,
    attempt: int,
    *,
    text_sent: bool,
    max_retries: int,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retrying after failed ``attempt`` (1-based), or None to give up.

    Never retries once text reached the caller: a retry would repeat it.
    """
    if not failure.retryable or text_sent or attempt > max_retries:
        return None
    if failure.retry_after is not None and failure.retry_after <= MAX_HONOURED_RETRY_AFTER:
        return failure.retry_after
    backoff = min(cap, base * 2 ** (attempt - 1))
    # jitter spreads out clients that failed together (e.g. one rate-limit window)
    return backoff * (0.75 + 0.25 * rand())


def not_compatible(target: Target, detail: str) -> ProviderFailure:
    """The server answered, but not the way an OpenAI-compatible server does."""
    head = (
        f"the server at {target.base_url} (provider '{target.provider}') "
        "did not answer like an OpenAI-compatible one"
    )
    return ProviderFailure(
        "bad_response", head, f"{target.redact(detail)}; check its base_url (usually …/v1)"
    )


def _json_type(value: Any) -> str:
    """How JSON calls the type of ``value`` (for messages)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "null"


class StreamState:
    """Turns a chat-completions SSE stream into ProviderEvents (one per attempt).

    ``FinishChunk`` is held back until the end so that it is always the last
    event, after the usage chunk OpenAI sends after the finish reason.
    """

    def __init__(self, target: Target, content_type: str = "text/event-stream") -> None:
        self.target = target
        self.content_type = content_type
        self.decoder = SSEDecoder()
        self.chars = 0
        self.events = 0
        self.text_sent = False
        self.finish_reason: str | None = None
        self.done = False
        # the first half of a surrogate pair that a server split across two chunks
        self._high = ""
        #: tool calls being assembled from ``delta.tool_calls``, by their index
        self._calls: dict[int, dict[str, str]] = {}

    def feed_line(self, line: str) -> list[ProviderEvent]:
        """Consume one line of the event stream."""
        data = self.decoder.feed(line)
        return [] if data is None else self.feed_data(data)

    def feed_data(self, data: str) -> list[ProviderEvent]:
        """Consume the data of one SSE event."""
        self.events += 1
        if data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            objects = _loads_events(data)
        except ValueError:
            raise not_compatible(self.target, f"stream data is not JSON: {data[:100]!r}") from None
        events: list[ProviderEvent] = []
        for obj in objects:
            events.extend(self._chunk_events(obj))
        return events

    def feed_completion(self, body: bytes) -> list[ProviderEvent]:
        """Consume a non-streaming ``chat.completion`` (servers that ignore ``stream``)."""
        try:
            obj = json.loads(body.decode("utf-8", "replace"))
            choice = obj["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise not_compatible(self.target, f"unexpected answer: {body[:100]!r}") from None
        if not isinstance(text, str):
            raise not_compatible(self.target, f"message.content is {_json_type(text)}")
        text = replace_lone_surrogates(text)
        events: list[ProviderEvent] = [TextChunk(text)] if text else []
        self._count(text)
        calls = choice["message"].get("tool_calls")
        for index, call in enumerate(calls if isinstance(calls, list) else []):
            self._add_call_delta({**call, "index": index} if isinstance(call, dict) else call)
        events.extend(self._usage(obj))
        self.finish_reason = str(choice.get("finish_reason") or "stop")
        self.done = True
        return events

    def end(self) -> list[ProviderEvent]:
        """Close the stream: the final ``FinishChunk``, or an error if the reply was cut off."""
        pending = self.decoder.flush()
        events = [] if pending is None or self.done else self.feed_data(pending)
        if self._high:  # half an emoji at the very end
            self._high = ""
            events.append(TextChunk("\ufffd"))
        if self.finish_reason is None:
            if not self.events and self.content_type != "text/event-stream":
                detail = f"it sent {self.content_type or 'an untyped answer'}, not an event stream"
                raise not_compatible(self.target, detail)
            head = f"the reply from provider '{self.target.provider}' was cut off"
            detail = f"the stream ended without a finish reason (after {self.chars} characters)"
            raise ProviderFailure("bad_response", head, detail)
        if self._calls:
            events.append(self._tool_calls())
        return [*events, FinishChunk(self.finish_reason)]

    def _add_call_delta(self, delta: Any) -> None:
        """One ``tool_calls`` entry of a delta: its index, and pieces of id, name, arguments."""
        if not isinstance(delta, dict):
            raise not_compatible(self.target, f"a tool call delta is {_json_type(delta)}")
        index = delta.get("index", len(self._calls))
        if not isinstance(index, int) or isinstance(index, bool):
            raise not_compatible(self.target, "a tool call delta has no numeric index")
        function = delta.get("function") or {}
        if not isinstance(function, dict):
            raise not_compatible(self.target, f"a tool call's function is {_json_type(function)}")
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        for key, value in (
            ("id", delta.get("id")),
            ("name", function.get("name")),
            ("arguments", function.get("arguments")),
        ):
            if value is None:
                continue
            if not isinstance(value, str):
                raise not_compatible(
                    self.target, f"a tool call's {key} is {_json_type(value)}, not a string"
                )
            # servers send id and name once; arguments arrive in fragments
            call[key] = call[key] + value if key == "arguments" else value

    def _tool_calls(self) -> ToolCallsChunk:
        """The assembled tool calls, in index order (a missing id is made up)."""
        calls = []
        for index in sorted(self._calls):
            call = self._calls[index]
            calls.append(
                ToolCall(
                    id=replace_lone_surrogates(call["id"]) or f"call_{index}",
                    name=replace_lone_surrogates(call["name"]),
                    arguments=replace_lone_surrogates(call["arguments"]),
                )
            )
        return ToolCallsChunk(tuple(calls))

    def _chunk_events(self, obj: Any) -> list[ProviderEvent]:
        if not isinstance(obj, dict):
            raise not_compatible(self.target, f"a stream event is {_json_type(obj)}")
        if obj.get("error"):
            raise self._stream_error(obj)
        choices = obj.get("choices")
        if choices is None and not isinstance(obj.get("usage"), dict):
            raise not_compatible(self.target, f"a stream event is not a chunk: {str(obj)[:100]!r}")
        if not isinstance(choices, list | None) or (choices and not isinstance(choices[0], dict)):
            raise not_compatible(self.target, "a stream event's choices are not a list of objects")
        choice = choices[0] if choices else {}
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise not_compatible(self.target, f"delta is {_json_type(delta)}")
        events: list[ProviderEvent] = []
        # a refusal is what the model said instead of an answer: show it like text
        text = self._text(delta, "content") + self._text(delta, "refusal")
        if text:
            self._count(text)
            events.append(TextChunk(text))
        calls = delta.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise not_compatible(self.target, f"delta.tool_calls is {_json_type(calls)}")
            for call in calls:
                self._add_call_delta(call)
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        events.extend(self._usage(obj))
        return events

    def _text(self, delta: dict[str, Any], key: str) -> str:
        """``delta[key]`` as clean text (surrogate pairs joined even across chunks)."""
        value = delta.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise not_compatible(self.target, f"delta.{key} is {_json_type(value)}, not a string")
        if self._high:
            value, self._high = self._high + value, ""
        if value.isascii():
            return value
        if "\ud800" <= value[-1] <= "\udbff":
            value, self._high = value[:-1], value[-1]
        return replace_lone_surrogates(value)

    def _count(self, text: str) -> None:
        self.chars += len(text)
        self.text_sent = self.text_sent or bool(text)

    @staticmethod
    def _usage(obj: dict[str, Any]) -> list[ProviderEvent]:
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            return []
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return [
            UsageChunk(
                prompt if isinstance(prompt, int) and not isinstance(prompt, bool) else None,
                completion
                if isinstance(completion, int) and not isinstance(completion, bool)
                else None,
            )
        ]

    def _stream_error(self, obj: dict[str, Any]) -> ProviderFailure:
        """An ``error`` object sent inside the stream (overload, moderation, ...)."""
        detail = self.target.redact(error_detail(obj))
        code = _error_code(obj)
        transient = any(w in code for w in ("server_error", "overloaded", "rate_limit", "timeout"))
        head = f"provider '{self.target.provider}' reported an error mid-stream"
        return ProviderFailure(
            "server" if transient else "bad_response", head, detail, retryable=transient
        )


# ---- offline token counting ----------------------------------------------------------

_TIKTOKEN_BLOBS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def _encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name, or None for other models."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35")):
        return "cl100k_base"
    return None


def _tiktoken_cached(encoding: str) -> bool:
    """Whether tiktoken's cache already holds ``encoding`` (so no download happens)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:  # an empty TIKTOKEN_CACHE_DIR disables tiktoken's cache
        return False
    key = hashlib.sha1(_TIKTOKEN_BLOBS[encoding].encode()).hexdigest()
    path = Path(cache_dir) / key
    return path.is_file() and path.stat().st_size > 0


@lru_cache(maxsize=4)
def _load_encoding(encoding: str) -> Any:
    """The tiktoken encoding, or None when tiktoken or its cached file is missing."""
    if not _tiktoken_cached(encoding):
        return None
    try:
        import tiktoken  # optional; imported lazily because it is slow and rarely needed
    except ImportError:
        return None
    try:
        return tiktoken.get_encoding(encoding)
    except Exception:  # a broken cache must not break chatting; the core estimates instead
        log.debug("tiktoken could not load %s", encoding, exc_info=True)
        return None


def count_message_tokens(model: str, messages: list[ChatMessage]) -> int | None:
    """Prompt tokens of ``messages`` for an OpenAI ``model``, or None when unknown offline."""
    name = _encoding_name(model)
    encoding = _load_encoding(name) if name else None
    if encoding is None:
        return None
    # OpenAI's documented overhead: 3 tokens per message, 3 to prime the reply
    per_message = (
        3 + len(encoding.encode(m.role)) + len(encoding.encode(m.content)) for m in messages
    )
    return sum(per_message) + 3


# ---- the provider ----------------------------------------------------------------

#: seconds a model listing may take: it blocks whoever needs the list
LIST_TIMEOUT = 10.0
#: fields of a ``/models`` entry that servers use for the context length (vLLM, OpenRouter)
_CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window")


def endpoint(base_url: str, path: str) -> httpx.URL:
    """``base_url`` + ``path``, keeping a query of the base URL (``…/v1?api-version=1``)."""
    url = httpx.URL(base_url)
    return url.copy_with(path=url.path.rstrip("/") + path)


class OpenAICompatProvider:
    """A Provider for any OpenAI-compatible chat-completions server."""

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        extra_headers: dict[str, str] | None = None,
        transport: Any = None,
        api_key_env: str | None = None,
        async_transport: Any = None,
    ) -> None:
        self.name = name
        self.api_key_env = api_key_env  # only named in error messages
        self._given_url = base_url.rstrip("/")  # with its credentials: for Target only
        #: the base URL as messages and reprs show it (credentials masked)
        self.url = redact_url(self._given_url)
        self._api_key = api_key or None
        self._authorization = f"Bearer {self._api_key}" if self._api_key else None
        try:
            url = httpx.URL(self._given_url)
            if url.userinfo:
                # user:password@ means HTTP basic auth (as in httpx); it is sent as a
                # header, never in the URL, which transports and logs would show
                pair = f"{url.username}:{url.password}".encode()
                self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")
                url = url.copy_with(userinfo=b"")
            self._base_url = str(url)
            # parsed once: httpx parses a URL string in pure Python on every request
            self._chat_url = endpoint(self._base_url, "/chat/completions")
        except httpx.InvalidURL:
            raise ProviderError(
                f"provider '{name}' has an invalid base_url: {self.url}",
                kind="not_configured",
                hint=f"set providers.{name}.base_url to the server's /v1 URL",
            ) from None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._extra_headers = dict(extra_headers or {})
        self._transport = transport
        # servers pass an AiohttpTransport here: same client API, half the CPU
        self._async_transport = async_transport
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAICompatProvider(name={self.name!r}, base_url={self.url!r}, api_key=<{key}>)"

    # -- clients (created lazily: building one costs time that `mschat ask` feels) --------

    def _client_options(self, *, for_async: bool = False) -> dict[str, Any]:
        headers = {"User-Agent": f"mschat/{__version__}", **self._extra_headers}
        if self._authorization:
            headers["Authorization"] = self._authorization
        options: dict[str, Any] = {
            "headers": headers,
            "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout),
        }
        if for_async and self._async_transport is not None:
            options["transport"] = self._async_transport
        elif self._transport is not None:
            options["transport"] = self._transport
        return options

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            # pooled connections belong to one event loop; a new loop needs a new client
            self._aclient = httpx.AsyncClient(**self._client_options(for_async=True))
            self._aclient_loop = loop
        return self._aclient

    def _target(self, model: str | None) -> Target:
        return Target(self.name, self._given_url, model, self._api_key, self.api_key_env)

    def _delay(self, failure: ProviderFailure, attempt: int, state: StreamState) -> float | None:
        return retry_delay(
            failure,
            attempt,
            text_sent=state.text_sent,
            max_retries=self.max_retries,
            base=self.backoff_base,
            cap=self.backoff_max,
        )

    def _retry_event(self, failure: ProviderFailure, attempt: int, delay: float) -> RetryChunk:
        # info, not warning: the RetryChunk is the user's notice; a warning would reach
        # stderr a second time through logging's last-resort handler in the CLI
        log.info(
            "%s: attempt %d failed (%s); retrying in %.2f s",
            self.name,
            attempt,
            failure.message(),
            delay,
        )
        return RetryChunk(
            attempt=attempt, delay=delay, error=failure.message(), status=failure.status
        )

    # -- streaming ----------------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the reply: TextChunk/UsageChunk/RetryChunk events, then one FinishChunk."""
        payload = build_payload(request)
        attempt = 0
        while True:
            attempt += 1
            state = StreamState(self._target(request.model))
            try:
                async with contextlib.aclosing(self._attempt(payload, state)) as events:
                    async for event in events:
                        yield event
                return
            except ProviderFailure as exc:
                failure = exc
            delay = self._delay(failure, attempt, state)
            if delay is None:
                raise failure.to_error(attempt) from None
            yield self._retry_event(failure, attempt, delay)
            await asyncio.sleep(delay)

    async def _attempt(
        self, payload: dict[str, Any], state: StreamState
    ) -> AsyncGenerator[ProviderEvent, None]:
        """One POST; raises ProviderFailure."""
        path = "/chat/completions"
        try:
            async with self._async_client().stream("POST", self._chat_url, json=payload) as resp:
                if resp.status_code >= 400:
                    body = await resp.aread()
                    raise classify_http_error(
                        state.target, resp.status_code, body, resp.headers, path=path
                    )
                state.content_type = _content_type(resp)
                if state.content_type == "application/json":
                    for event in state.feed_completion(await resp.aread()):
                        yield event
                elif state.content_type in ("text/html", "application/xhtml+xml"):
                    raise not_compatible(state.target, "it sent a web page (text/html)")
                else:
                    splitter = LineSplitter()
                    async for chunk in resp.aiter_bytes():
                        for line in splitter.feed(chunk):
                            for event in state.feed_line(line):
                                yield event
                        if state.done:
                            break
                    else:
                        for line in splitter.close():
                            for event in state.feed_line(line):
                                yield event
        except httpx.HTTPError as exc:
            self._raise_unless_finished(exc, state)
        for event in state.end():
            yield event

    def _raise_unless_finished(self, exc: httpx.HTTPError, state: StreamState) -> None:
        """Raise the failure for ``exc`` unless the reply had already finished."""
        if state.finish_reason is not None:
            # the answer is complete; losing the trailing usage/[DONE] is harmless
            log.debug("%s: ignoring %s after the finish reason", self.name, type(exc).__name__)
            return
        failure = classify_transport_error(
            state.target, exc, chars_received=state.chars, timeout=self.timeout
        )
        # not chained: an httpx exception may quote the URL with its credentials
        raise failure from None

    # -- conveniences -------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> tuple[str, UsageChunk | None, str]:
        """Collect the whole reply: (text, usage or None, finish reason)."""
        parts: list[str] = []
        usage: UsageChunk | None = None
        reason = ""
        async for event in self.stream_chat(request):
            if isinstance(event, TextChunk):
                parts.append(event.text)
            elif isinstance(event, UsageChunk):
                usage = event
            elif isinstance(event, FinishChunk):
                reason = event.reason
        return "".join(parts), usage, reason

    def served_models(self) -> dict[str, int | None]:
        """Model ids the server lists (``GET /models``) with their context, in its order.

        Blocking, one attempt, at most ``LIST_TIMEOUT`` seconds: a caller that needs
        the list now (resolving a model name) gets a clear error rather than a wait.
        """
        target = self._target(None)
        timeout = httpx.Timeout(min(self.timeout or LIST_TIMEOUT, LIST_TIMEOUT))
        try:
            with httpx.Client(**{**self._client_options(), "timeout": timeout}) as client:
                resp = client.get(endpoint(self._base_url, "/models"))
            return _served_models(target, resp)
        except httpx.HTTPError as exc:
            failure = classify_transport_error(target, exc, timeout=timeout.read)
        except ProviderFailure as exc:
            failure = exc
        if failure.status == 404:
            reason = "no /models endpoint (404)"
        elif failure.status is not None:
            reason = failure.message()
        else:  # the transport's reason ("connection refused") or what was wrong with the answer
            reason = failure.detail or failure.head
        raise ProviderError(
            f"provider '{self.name}' at {self.url} cannot list its models: {reason}",
            kind=failure.kind,
            status=failure.status,
        )

    async def moderate(self, model: str, text: str) -> Moderation:
        """The verdict of ``POST /moderations`` on ``text`` (one attempt; ProviderError)."""
        path = "/moderations"
        target = self._target(model)
        try:
            resp = await self._async_client().post(
                endpoint(self._base_url, path), json={"model": model, "input": text}
            )
            if resp.status_code >= 400:
                raise classify_http_error(
                    target, resp.status_code, resp.content, resp.headers, path=path
                )
        except httpx.HTTPError as exc:
            failure = classify_transport_error(target, exc, timeout=self.timeout)
            raise failure.to_error() from None
        except ProviderFailure as exc:
            raise exc.to_error() from None
        try:
            result = json.loads(resp.content)["results"][0]
            flagged = result["flagged"]
            categories = result.get("categories") or {}
            if not isinstance(flagged, bool) or not isinstance(categories, dict):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError):
            failure = not_compatible(target, "its /moderations answer has no results")
            raise failure.to_error() from None
        return Moderation(flagged, tuple(str(name) for name, hit in categories.items() if hit))

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> int | None:
        """Prompt tokens via tiktoken when installed and its encoding is cached; else None."""
        return count_message_tokens(model, messages)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        client, self._aclient, self._aclient_loop = self._aclient, None, None
        if client is not None:
            await client.aclose()


def _content_type(resp: httpx.Response) -> str:
    """The media type of a response, lower-cased, without parameters."""
    return resp.headers.get("content-type", "").split(";")[0].strip().lower()


def _context_of(entry: dict[str, Any]) -> int | None:
    """The context length a ``/models`` entry reports, if any."""
    for key in _CONTEXT_FIELDS:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _served_models(target: Target, resp: httpx.Response) -> dict[str, int | None]:
    """Parse a ``GET /models`` response; raises ProviderFailure."""
    if resp.status_code >= 400:
        raise classify_http_error(
            target, resp.status_code, resp.content, resp.headers, path="/models"
        )
    try:
        data = json.loads(resp.content.decode("utf-8", "replace"))["data"]
        models = {str(entry["id"]): _context_of(entry) for entry in data}
    except (ValueError, KeyError, TypeError):
        raise not_compatible(
            target, f"its /models answer is not a model list: {resp.content[:100]!r}"
        ) from None
    return {replace_lone_surrogates(name): size for name, size in models.items() if name}
