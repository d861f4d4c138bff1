"""The TUI's live view of another instance's reply: flush to display, per backend.

Prints figures; it asserts nothing. Run from the repository root:

    python bench/live.py [--db URL | --only sqlite|postgresql] [--flushes 300]
                         [--interval 0.05] [--per-reply 50]

Two instances in one process, on one database, each with its own store: a
writer (a SessionManager whose reply streams a chunk every ``--interval``
seconds and flushes each to the database) and the TUI (headless, the real app
with its default settings), showing the writer's session. For every content
flush the latency is the time from the flush (when the writer's
``update_message`` is called: the write itself is counted) to the first time
the TUI's view of the reply draws that much text or more (the view renders its
lines at the next paint).

On PostgreSQL the TUI is pushed the change (LISTEN/NOTIFY); on SQLite it polls
``data_version`` every 0.5 s. Budget: p99 <= 0.5 s on PostgreSQL.

Without ``--db`` it measures SQLite (a file in a temporary directory) and
PostgreSQL (a throwaway cluster of the machine's binaries, durable commits).
With ``--db`` it measures that database (empty or mschat's: use a scratch one).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_P99 = 0.5
USER = "bench"


class PacedProvider:
    """Streams ``chunks`` words, one every ``pause`` seconds."""

    name = "fake"

    def __init__(self, chunks: int, pause: float) -> None:
        self.chunks = chunks
        self.pause = pause

    async def stream_chat(self, request: object) -> AsyncIterator[object]:
        """Words, then usage and finish."""
        from mschat.providers.base import FinishChunk, TextChunk, UsageChunk

        for index in range(self.chunks):
            yield TextChunk(f"word{index} ")
            await asyncio.sleep(self.pause)
        yield UsageChunk(prompt_tokens=10, completion_tokens=self.chunks)
        yield FinishChunk("stop")

    def count_tokens(self, model: str, messages: list[Any]) -> int | None:
        """No tokenizer."""
        return None

    async def aclose(self) -> None:
        """Nothing to close."""


def configure_home() -> None:
    """A throwaway MSCHAT_HOME whose default model is the in-process provider."""
    home = Path(tempfile.mkdtemp(prefix="mschat-bench-live-"))
    (home / "config.toml").write_text(
        f'[general]\ndefault_model = "fake/fake-model"\nuser_name = "{USER}"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n',
        encoding="utf-8",
    )
    os.environ["MSCHAT_HOME"] = str(home)


def percentile(ordered: list[float], share: float) -> float:
    """The value below which ``share`` of the sorted values lie."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def measure(url: str, flushes: int, interval: float, per_reply: int) -> list[float]:
    """Stream replies from a writer instance; the latency of each flush, in seconds."""
    from mschat.config import load_config
    from mschat.core.manager import SessionManager
    from mschat.core.services import build_services
    from mschat.providers.registry import Registry
    from mschat.store import open_store
    from mschat.tui.app import make_app
    from mschat.tui.widgets.chat import MessageView

    config = load_config(db=url)
    provider = PacedProvider(per_reply, interval)
    writer = SessionManager(
        open_store(url),
        Registry(config, providers={"fake": provider}),  # type: ignore[dict-item]
        local_user_name=USER,
        flush_interval=interval * 0.9,  # every chunk is flushed
    )
    services = build_services(config, providers={"fake": PacedProvider(1, 0)})  # type: ignore[dict-item]

    flushed: list[tuple[int, int, float]] = []  # (reply id, length, when the flush began)
    update_message = writer.store.update_message

    def timed_update(message_id: int, **values: Any) -> None:
        # the time before the write, not after: once committed, the thread may wait
        # for the GIL while the TUI already draws the text
        began = time.perf_counter()
        update_message(message_id, **values)
        if values.get("content"):
            flushed.append((message_id, len(values["content"]), began))

    writer.store.update_message = timed_update  # type: ignore[method-assign]

    drawn: list[tuple[int, int, float]] = []  # (message id, length, when drawn)
    lines = MessageView._lines

    def timed_lines(view: MessageView, width: int) -> Any:
        fresh = width != view._width
        result = lines(view, width)
        if fresh:
            drawn.append((view.message.id, len(view.message.content), time.perf_counter()))
        return result

    MessageView._lines = timed_lines  # type: ignore[method-assign]
    me = await writer.local_user()
    session = await writer.create_session(me, title="live bench")
    app = make_app(services)
    latencies: list[float] = []
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while not (app.ready and app.session is not None and app.session.id == session.id):
                await pilot.pause(0.01)
            while len(latencies) < flushes:
                start = len(flushed)
                drawn.clear()
                async for _event in writer.ask(me, "stream please", session_id=session.id):
                    pass
                reply, final, _ = flushed[-1]
                deadline = time.perf_counter() + 10
                while not any(i == reply and n >= final for i, n, _ in drawn):
                    if time.perf_counter() > deadline:
                        raise TimeoutError("the TUI never showed the whole reply")
                    await pilot.pause(0.01)
                longest = 0
                for reply, length, at in flushed[start:]:
                    if length <= longest:
                        continue  # the final write of a reply adds no text: nothing new to show
                    longest = length
                    # text is drawn only once written: the first draw this long is the one
                    shown = min(t for i, n, t in drawn if i == reply and n >= length)
                    latencies.append(shown - at)
            app.exit()
    finally:
        MessageView._lines = lines  # type: ignore[method-assign]
        await writer.aclose()
        await services.aclose()
    return latencies[:flushes]


def report(label: str, latencies: list[float]) -> None:
    """p50, p99 and max in milliseconds, against the budget."""
    ordered = sorted(latencies)
    p99 = percentile(ordered, 0.99)
    verdict = "ok" if p99 <= BUDGET_P99 else "MISSED"
    print(
        f"  {label:<12} flush → shown  p50 {statistics.median(ordered) * 1000:7.1f} ms"
        f"   p99 {p99 * 1000:7.1f} ms   min {ordered[0] * 1000:5.1f}"
        f"   max {ordered[-1] * 1000:7.1f}"
        f"   (n={len(ordered)}; budget p99 {BUDGET_P99 * 1000:g} ms: {verdict})",
        flush=True,
    )


def bench(url: str, label: str, args: argparse.Namespace) -> None:
    """Measure one database."""
    latencies = asyncio.run(measure(url, args.flushes, args.interval, args.per_reply))
    report(label, latencies)


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a database URL or path (default: both backends, fresh)")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one backend")
    parser.add_argument("--flushes", type=int, default=300, help="content flushes measured")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between chunks")
    parser.add_argument("--per-reply", type=int, default=50, help="chunks (flushes) per reply")
    args = parser.parse_args()
    configure_home()
    print(
        f"TUI live view of another instance's reply: {args.flushes} flushes, one every "
        f"{args.interval * 1000:g} ms (python {sys.version.split()[0]})",
        flush=True,
    )
    if args.db:
        bench(args.db, "given", args)
        return
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as folder:
            bench(str(Path(folder) / "live.db"), "SQLite", args)
    if args.only == "sqlite":
        return
    from tests.pg import Cluster, find_binaries

    binaries = find_binaries()
    if binaries is None:
        print("  PostgreSQL: not installed (no pg_ctl)")
        return
    cluster = Cluster(binaries, durable=True)  # commits wait for the WAL, as in production
    try:
        cluster.start()
        cluster.execute("CREATE DATABASE live")
        bench(cluster.url("live"), "PostgreSQL", args)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
