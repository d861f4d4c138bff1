"""The pool of MCP servers: each started on first use, in one long-lived task of its own.

The ``mcp`` SDK's client runs anyio task groups, whose cancel scopes must be
entered and exited by the same task: so each server's client is entered, and
later exited, by its own task (:meth:`ServerLink._serve`), and calls reach it
from the answering tasks. A server that cannot start, or whose connection
breaks (a crashed process), fails the call at hand with :class:`ToolFailed`
and is started again on its next use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from mschat.config import McpServerConfig
from mschat.redact import redact_text, redact_url
from mschat.visible import visible

log = logging.getLogger(__name__)

#: seconds a server may take to start and list its tools
START_TIMEOUT = 30.0
#: what OpenAI accepts as a function name
_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")


class ToolFailed(Exception):
    """A tool call could not be made or its server failed (the message says why)."""


class ToolTimedOut(ToolFailed):
    """A tool call took longer than its server's ``timeout``."""


@dataclass(frozen=True, slots=True)
class OfferedTool:
    """A tool as the model is offered it: ``name`` is unique among the offered tools."""

    name: str
    server: str
    tool: str
    description: str
    input_schema: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        """The OpenAI function tool spec."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema or {"type": "object", "properties": {}},
            },
        }


def function_name(server: str, tool: str) -> str:
    """``server__tool`` in the characters and length a function name may have."""
    return _FUNCTION_NAME.sub("_", f"{server}__{tool}")[:64]


class ServerLink:
    """One configured server: started lazily, its tools cached, restarted after a failure."""

    def __init__(self, config: McpServerConfig, target: Any = None) -> None:
        self.config = config
        #: an in-process server (tests) instead of the configured command or URL
        self.target = target
        self.tools: list[Any] | None = None
        self.starts = 0
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._errlog: Any = None

    @property
    def running(self) -> bool:
        """Whether the server is started and its connection alive."""
        return self._client is not None and self._task is not None and not self._task.done()

    def _on_this_loop(self) -> asyncio.Lock:
        """The link's lock; a link last used from another event loop starts afresh there
        (that loop's end cancelled its server task, which stopped the server)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._loop, self._lock = loop, asyncio.Lock()
            self._task = self._client = self._stop = self.tools = None
        return self._lock

    async def ensure(self) -> list[Any]:
        """The server's tools, starting it first if it is not running (ToolFailed)."""
        async with self._on_this_loop():
            if self.running and self.tools is not None:
                return self.tools
            await self._shutdown()
            return await self._start()

    async def _start(self) -> list[Any]:
        self.starts += 1
        ready: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            self._serve(ready, self._stop), name=f"mcp-server-{self.config.name}"
        )
        try:
            self.tools = await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT)
        except TimeoutError:
            await self._shutdown()
            raise ToolFailed(
                f"MCP server {self.config.name!r} did not start in {START_TIMEOUT:g} s"
            ) from None
        except ToolFailed:
            await self._shutdown()
            raise
        return self.tools

    async def _serve(self, ready: asyncio.Future[list[Any]], stop: asyncio.Event) -> None:
        """The server's own task: enter its client, list its tools, wait, exit it."""
        try:
            from mcp import Client

            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(await self._transport(stack)))
                listed = await client.list_tools()
                self._client = client
                if not ready.done():
                    ready.set_result(list(listed.tools))
                await stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the SDK raises exception groups, OSError, MCPError…
            reason = self._reason(exc)
            log.warning("MCP server %r stopped: %s", self.config.name, reason)
            if not ready.done():
                ready.set_exception(ToolFailed(f"MCP server {self.config.name!r} failed: {reason}"))
        finally:
            self._client = None
            errlog, self._errlog = self._errlog, None
            if errlog is not None:
                errlog.close()

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        """What the client connects to: the in-process server, a command, or a URL."""
        if self.target is not None:
            return self.target
        config = self.config
        if config.url:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = await stack.enter_async_context(
                create_mcp_http_client(headers=dict(config.headers) or None)
            )
            return streamable_http_client(config.url, http_client=http)
        import tempfile

        from mcp.client.stdio import StdioServerParameters, stdio_client

        # the server's stderr is kept (a failure quotes its end), never shown as it comes
        # closed by _serve once a failure has quoted it
        self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        params = StdioServerParameters(
            command=config.command or "",
            args=list(config.args),
            env=dict(config.env) or None,
            cwd=config.cwd,
            encoding_error_handler="replace",
        )
        return stdio_client(params, errlog=self._errlog)

    def _reason(self, exc: BaseException) -> str:
        """One line on why the server failed, secrets masked, its stderr's end quoted."""
        leaves = [exc]
        while leaves and isinstance(leaves[0], BaseExceptionGroup):
            leaves = list(leaves[0].exceptions) + leaves[1:]
        first = leaves[0] if leaves else exc
        text = f"{type(first).__name__}: {first}" if str(first) else type(first).__name__
        stderr = self._stderr_tail()
        if stderr:
            text += f" (stderr: {stderr})"
        secrets = [*self.config.env.values(), *self.config.headers.values()]
        if self.config.url:
            text = text.replace(self.config.url, redact_url(self.config.url))
        # quoted in logs and results that reach terminals: no control sequences
        return visible(" ".join(redact_text(text, secrets).split())[:400], newlines=False)

    def _stderr_tail(self) -> str:
        errlog = self._errlog
        if errlog is None or errlog.closed:
            return ""
        try:
            errlog.flush()
            errlog.seek(0)
            return " ".join(errlog.read()[-300:].split())
        except (OSError, ValueError):
            return ""

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        """Call ``tool``; its ``CallToolResult``, or ToolFailed / ToolTimedOut."""
        await self.ensure()
        client = self._client
        if client is None:
            raise ToolFailed(f"MCP server {self.config.name!r} is not running")
        try:
            return await asyncio.wait_for(client.call_tool(tool, arguments), timeout)
        except TimeoutError:
            raise ToolTimedOut(f"the tool did not answer within {timeout:g} s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # the connection broke (a crashed process) or the server refused the call:
            # start it afresh on its next use
            reason = self._reason(exc)
            log.warning("MCP server %r: call of %s failed: %s", self.config.name, tool, reason)
            await self.reset()
            raise ToolFailed(f"MCP server {self.config.name!r} failed: {reason}") from None

    async def reset(self) -> None:
        """Stop the server; the next use starts it again."""
        async with self._on_this_loop():
            await self._shutdown()

    async def _shutdown(self) -> None:
        task, self._task = self._task, None
        if self._stop is not None:
            self._stop.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, 5.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._client = None
        self.tools = None


class ServerPool:
    """The enabled MCP servers of one process (``Services`` closes them)."""

    def __init__(
        self, configs: dict[str, McpServerConfig], targets: dict[str, Any] | None = None
    ) -> None:
        self.links = {
            name: ServerLink(config, (targets or {}).get(name))
            for name, config in configs.items()
            if config.enabled
        }

    def __bool__(self) -> bool:
        return bool(self.links)

    async def offered(self) -> dict[str, OfferedTool]:
        """Every tool of the enabled servers (started now if needed), by function name.

        A server that fails to start is left out with a warning: the question goes on
        with the tools of the others. A tool in the server's ``deny`` is not offered.
        """
        names = list(self.links)
        listed = await asyncio.gather(
            *(self.links[name].ensure() for name in names), return_exceptions=True
        )
        offered: dict[str, OfferedTool] = {}
        for name, tools in zip(names, listed, strict=True):
            if isinstance(tools, BaseException):
                if not isinstance(tools, Exception):
                    raise tools
                log.warning("%s", tools)
                continue
            deny = self.links[name].config.deny
            for tool in tools:
                if "*" in deny or tool.name in deny:
                    continue
                function = function_name(name, tool.name)
                if function in offered:
                    log.warning("MCP tool %s/%s left out: its name clashes", name, tool.name)
                    continue
                offered[function] = OfferedTool(
                    name=function,
                    server=name,
                    tool=tool.name,
                    description=tool.description or "",
                    input_schema=dict(tool.input_schema or {}),
                )
        return offered

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Call a tool of a server, within its ``timeout`` (ToolFailed / ToolTimedOut)."""
        link = self.links.get(server)
        if link is None:
            raise ToolFailed(f"no enabled MCP server {server!r}")
        return await link.call(tool, arguments, link.config.timeout)

    def started(self) -> list[str]:
        """The servers running now (tests, diagnostics)."""
        return [name for name, link in self.links.items() if link.running]

    async def aclose(self) -> None:
        """Stop every server."""
        await asyncio.gather(*(link.reset() for link in self.links.values()))
