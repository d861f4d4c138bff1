"""The tool loop's overhead per call, with a no-op MCP tool: in-process and over stdio.

Prints figures; it asserts nothing. Run from the repository root:

    python bench/tools.py [--calls 500] [--only inprocess|stdio]

One answer asks for ``--calls`` tool calls, one per round, of the test server's
``noop`` tool (``tests/fakes/mcp_server.py``), through the real core: the
manager's ``ask``, the answer pipeline, the writer, the tool loop, the policy,
the server pool and an SQLite store. The model is an in-process provider that
answers instantly, so what is measured is mschat's part: from the moment the
model's round ends with a tool call to the moment the next request with its
result starts (deciding the call, running it on the server, storing the call
and the round's ``api_calls`` row, the events). The first call (which starts the
server) is left out. Budget: p50 and p99 ≤ 2 ms in-process, ≤ 20 ms over stdio.

For comparison, ``sdk`` lines time the same calls made directly on the server's
connection (the MCP SDK and the transport alone): the loop's own part is the
difference. On a loaded machine both tails grow together.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class InstantModel:
    """A provider that asks for ``calls`` noop calls, one per round, then answers."""

    name = "bench"

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.rounds = 0
        self.ended: float | None = None
        self.gaps: list[float] = []

    async def stream_chat(self, request: object) -> AsyncIterator[object]:
        """One round: a tool call while calls remain, else the answer."""
        from mschat.providers.base import FinishChunk, TextChunk, ToolCall, ToolCallsChunk

        now = time.perf_counter()
        if self.ended is not None:
            self.gaps.append(now - self.ended)
        if self.rounds < self.calls:
            self.rounds += 1
            yield ToolCallsChunk((ToolCall(f"c{self.rounds}", "bench__noop", "{}"),))
            self.ended = time.perf_counter()
            yield FinishChunk("tool_calls")
            return
        yield TextChunk("done")
        yield FinishChunk("stop")

    def count_tokens(self, model: str, messages: list[object]) -> int | None:
        """Unknown: the core estimates."""
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


def configure(home: Path, stdio: bool) -> None:
    """A config whose bench server is the test MCP server, in-process or over stdio."""
    if stdio:
        server = (
            f'command = "{sys.executable}"\nargs = ["-m", "tests.fakes.mcp_server"]\n'
            f'cwd = "{ROOT}"\n'
        )
    else:
        server = 'command = "unused"\n'
    (home / "config.toml").write_text(
        '[general]\ndefault_model = "bench/instant"\nuser_name = "bench"\n'
        '[providers.bench]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["instant"]\n'
        "tools = true\n[tools]\nmax_rounds = 100000\n"
        f'[mcp.servers.bench]\n{server}allow = ["*"]\n',
        encoding="utf-8",
    )


async def measure(kind: str, calls: int) -> list[float]:
    """Seconds of loop overhead per call (the first, which starts the server, left out)."""
    from mschat.config import load_config
    from mschat.core.services import build_services
    from mschat.core.tools.toolbox import Toolbox
    from tests.fakes.mcp_server import make_server

    home = Path(tempfile.mkdtemp(prefix=f"mschat-bench-tools-{kind}-"))
    os.environ["MSCHAT_HOME"] = str(home)
    configure(home, stdio=kind == "stdio")
    model = InstantModel(calls + 1)
    config = load_config()
    services = build_services(config, providers={"bench": model})  # type: ignore[dict-item]
    if kind == "inprocess":
        services.manager.use_tools(Toolbox(config, {"bench": make_server("bench")}))
    try:
        me = await services.manager.local_user()
        async for _ in services.manager.ask(me, "run the tool", new_session=True):
            pass
    finally:
        await services.aclose()
    return model.gaps[1:]


async def measure_sdk(kind: str, calls: int) -> list[float]:
    """Seconds per direct call of the noop tool on a started server (the first left out)."""
    from mschat.config import McpServerConfig
    from mschat.core.tools.servers import ServerLink
    from tests.fakes.mcp_server import make_server

    if kind == "stdio":
        config = McpServerConfig(
            "bench", command=sys.executable, args=["-m", "tests.fakes.mcp_server"], cwd=str(ROOT)
        )
        link = ServerLink(config)
    else:
        link = ServerLink(McpServerConfig("bench", command="unused"), make_server("bench"))
    times: list[float] = []
    try:
        for _ in range(calls + 1):
            started = time.perf_counter()
            await link.call("noop", {}, 30.0)
            times.append(time.perf_counter() - started)
    finally:
        await link.reset()
    return times[1:]


def report(kind: str, gaps: list[float], budget_ms: float) -> None:
    """One line of figures."""
    ms = sorted(g * 1000 for g in gaps)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    verdict = "within" if p99 <= budget_ms else "OVER"
    print(
        f"{kind:>13}: {len(ms)} calls  p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
        f"max {ms[-1]:.2f} ms  ({verdict} the {budget_ms:g} ms budget)"
    )


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--only", choices=["inprocess", "stdio"])
    args = parser.parse_args()
    for kind, budget in (("inprocess", 2.0), ("stdio", 20.0)):
        if args.only in (None, kind):
            report(kind, asyncio.run(measure(kind, args.calls)), budget)
            report(f"{kind} sdk", asyncio.run(measure_sdk(kind, args.calls)), budget)


if __name__ == "__main__":
    main()
