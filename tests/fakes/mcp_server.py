"""A test MCP server: a no-op tool, echo, a tool that hangs, one that returns 1 MB,
one that crashes the process, and one that prints control sequences.

In-process: ``make_server()`` returns an ``MCPServer`` to hand to the pool.
Over stdio: ``python -m tests.fakes.mcp_server [--marker FILE]`` (``sys.executable``);
``--marker`` appends a line to FILE when the process starts, so a test can tell
whether a server was started at all. ``--http PORT`` serves Streamable HTTP on
``http://127.0.0.1:PORT/mcp`` instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

#: what the ``big`` tool returns: 1 MB of text
BIG = 1_000_000
#: what the ``hostile`` tool returns: a terminal control sequence and markup
HOSTILE = "\x1b]0;pwned\x07\x1b[2J[bold red]boom[/] <b>x</b>"


def make_server(name: str = "test", calls: list[str] | None = None) -> MCPServer:
    """An MCP server with the test tools; ``calls`` collects the names of tools run."""
    server = MCPServer(name)
    ran = calls if calls is not None else []

    @server.tool()
    def noop() -> str:
        """Do nothing."""
        ran.append("noop")
        return "ok"

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        ran.append("echo")
        return f"echo: {text}"

    @server.tool()
    async def hang() -> str:
        """Never return."""
        import anyio

        await anyio.sleep_forever()
        return "never"

    @server.tool()
    def big() -> str:
        """Return 1 MB of text."""
        return "x" * BIG

    @server.tool()
    def crash() -> str:
        """Kill the server's process mid-call (over stdio only: in-process it is the test's)."""
        os._exit(3)

    @server.tool()
    def hostile() -> str:
        """Return control sequences and markup."""
        return HOSTILE

    @server.tool()
    def fail() -> str:
        """Raise an error (reported as a tool error)."""
        raise RuntimeError("the tool broke")

    return server


def main(argv: list[str] | None = None) -> None:
    """Serve the test tools over stdio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--marker", help="append a line to this file at start")
    parser.add_argument("--http", type=int, help="serve Streamable HTTP on this port")
    args = parser.parse_args(argv)
    if args.marker:
        with Path(args.marker).open("a") as marker:
            marker.write(f"{os.getpid()}\n")
    print("test MCP server starting", file=sys.stderr)
    if args.http:
        make_server().run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        make_server().run()


if __name__ == "__main__":
    main()
