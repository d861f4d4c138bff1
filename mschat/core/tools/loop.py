"""The tool-call rounds of one answer.

The model answers; when it asks for tool calls, each is decided by the policy
(``policy.py``), the allowed ones run (within their server's ``timeout``, the
result cut to ``tools.max_result_chars``), the results are appended to the
conversation and the model is asked again, at most ``tools.max_rounds`` times.
Every call is shown to the front end as ``ToolCallStarted`` and
``ToolCallFinished``, and stored with the reply (``tool_calls``) by the writer
in the reply's final writes (``RoundEnded``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mschat.core.events import ToolCallFinished, ToolCallStarted
from mschat.core.tools import policy
from mschat.core.tools.policy import Decision
from mschat.core.tools.results import result_text, truncate
from mschat.core.tools.rounds import RoundEnded
from mschat.core.tools.servers import OfferedTool, ServerPool, ToolFailed, ToolTimedOut
from mschat.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishChunk,
    Provider,
    ProviderEvent,
    TextChunk,
    ToolCall,
    ToolCallsChunk,
    UsageChunk,
)

if TYPE_CHECKING:
    from mschat.core.answer.turns import Runner
    from mschat.core.models import User
    from mschat.store.contract import Store


@dataclasses.dataclass(frozen=True, slots=True)
class ToolRequest:
    """A call the terminal user is asked to confirm (the approval callback's argument).

    ``arguments`` is the model's JSON text: hostile, show it through ``visible()``.
    """

    call_id: str
    server: str
    tool: str
    arguments: str

    @property
    def name(self) -> str:
        """``SERVER/TOOL``, as ``--allow-tool`` and grants name it."""
        return f"{self.server}/{self.tool}"


#: the front end's question to the terminal user: run this call? (True: yes)
Approve = Callable[[ToolRequest], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """``[tools]``: rounds per answer and characters per result."""

    max_rounds: int = 8
    max_result_chars: int = 20_000


@dataclasses.dataclass(frozen=True, slots=True)
class _Outcome:
    status: str
    result: str
    notice: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class ToolLoop:
    """The rounds of one answer: its offered tools, its asker, where calls are stored."""

    def __init__(
        self,
        pool: ServerPool,
        offered: dict[str, OfferedTool],
        *,
        user: User,
        approve: Approve | None,
        store: Store,
        run: Runner,
        reply_id: int,
        limits: Limits,
    ) -> None:
        self.pool = pool
        self.offered = offered
        self.user = user
        self.approve = approve
        self.store = store
        self.run = run
        self.reply_id = reply_id
        self.limits = limits
        self._grants: frozenset[str] | None = None

    @property
    def specs(self) -> tuple[dict[str, Any], ...]:
        """The OpenAI tool specs offered to the model."""
        return tuple(tool.spec() for tool in self.offered.values())

    async def chunks(
        self, provider: Provider, request: ChatRequest
    ) -> AsyncIterator[ProviderEvent | ToolCallStarted | ToolCallFinished | RoundEnded]:
        """The provider's events over every round; the last ``FinishChunk`` ends them."""
        rounds = 0
        while True:
            calls: tuple[ToolCall, ...] = ()
            finish: FinishChunk | None = None
            usage: UsageChunk | None = None
            text: list[str] = []
            async for chunk in provider.stream_chat(request):
                if isinstance(chunk, ToolCallsChunk):
                    calls = chunk.calls
                    continue
                if isinstance(chunk, FinishChunk):
                    finish = chunk  # held: it ends the answer only if no tools follow
                    continue
                if isinstance(chunk, TextChunk):
                    text.append(chunk.text)
                elif isinstance(chunk, UsageChunk):
                    usage = chunk
                yield chunk
            if finish is None:
                return  # the writer reports the missing finish reason
            if not calls or not request.tools:
                yield finish
                return
            rounds += 1
            last = rounds >= self.limits.max_rounds
            answers: list[ChatMessage] = []
            rows: list[dict[str, Any]] = []
            for call in calls:
                async for event in self._call(call, rows):
                    yield event
                    if isinstance(event, ToolCallFinished):
                        answers.append(
                            ChatMessage(role="tool", content=event.result, tool_call_id=call.id)
                        )
            yield RoundEnded(usage, tuple(rows))
            asked = ChatMessage(role="assistant", content="".join(text), tool_calls=calls)
            request = dataclasses.replace(
                request,
                messages=(*request.messages, asked, *answers),
                # the last round's results come without tools: the model must answer now
                tools=() if last else request.tools,
            )

    async def _call(
        self, call: ToolCall, rows: list[dict[str, Any]]
    ) -> AsyncIterator[ToolCallStarted | ToolCallFinished]:
        """One call: announced, decided, maybe run, reported; its row added to ``rows``."""
        offered = self.offered.get(call.name)
        server, _, tool = call.name.partition("__")
        if offered is not None:
            server, tool = offered.server, offered.tool
        yield ToolCallStarted(call.id, server, tool, call.arguments)
        started_at, started = _now(), time.monotonic()
        outcome = await self._outcome(call, offered)
        result = truncate(outcome.result, self.limits.max_result_chars)
        duration = int((time.monotonic() - started) * 1000)
        rows.append(
            {
                "message_id": self.reply_id,
                "call_id": call.id,
                "server": server,
                "tool": tool,
                "arguments": call.arguments,
                "result": result,
                "status": outcome.status,
                "started": started_at,
                "finished": _now(),
            }
        )
        yield ToolCallFinished(
            call.id, server, tool, outcome.status, result, duration, outcome.notice
        )

    async def _outcome(self, call: ToolCall, offered: OfferedTool | None) -> _Outcome:
        if offered is None:
            return _Outcome("denied", f"There is no tool named {call.name!r}; it was not run.")
        server, tool = offered.server, offered.tool
        decision = policy.decide(
            self.user.kind, self.pool.links[server].config, tool, await self._user_grants()
        )
        if decision is Decision.ASK:
            if self.approve is None:
                return _Outcome(
                    "denied",
                    policy.not_available(server, tool),
                    policy.confirm_notice(server, tool),
                )
            request = ToolRequest(call.id, server, tool, call.arguments)
            if not await self.approve(request):
                return _Outcome("denied", f"The user refused to run {server}/{tool}.")
        elif decision is Decision.DENY:
            notice = None if self.user.kind == "local" else policy.remote_notice(server, tool)
            return _Outcome("denied", policy.not_available(server, tool), notice)
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return _Outcome("error", "The arguments are not a JSON object; the tool was not run.")
        try:
            result = await self.pool.call(server, tool, arguments)
        except ToolTimedOut as exc:
            return _Outcome("timeout", f"The tool failed: {exc}.")
        except ToolFailed as exc:
            return _Outcome("error", f"The tool failed: {exc}")
        text = result_text(result)
        if getattr(result, "is_error", False):
            return _Outcome("error", text or "The tool reported an error.")
        return _Outcome("ok", text)

    async def _user_grants(self) -> frozenset[str]:
        """The asker's tool grants (read once per answer, and only for remote users)."""
        if self.user.kind == "local":
            return frozenset()
        if self._grants is None:
            self._grants = frozenset(await self.run(self.store.tool_grants, self.user.id))
        return self._grants
