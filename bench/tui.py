"""Benchmark the terminal UI on a large store; prints figures (run by hand).

    .venv/bin/python bench/tui.py [--db PATH] [--sessions 10000] [--messages 1000000]

The database is generated once (executemany in one transaction, not through the
manager) and cached at PATH (default: $TMPDIR/tui-bench-cache/<sessions>x<messages>.db).
Budgets: first interactive screen <= 1.0 s, open a 5,000-message session <= 0.3 s,
CPU to stream a 1,000-chunk reply <= 0.5 s, search on 1M messages <= 0.2 s.
Also printed: how many screen updates a second the streamed reply got (want >= ~8).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

BIG_SESSION = 5_000
LOCAL_NAME = "bench"
BASE_TIME = 1_700_000_000  # fixed, so the cached database is reproducible


def iso(seconds: float) -> str:
    """Seconds since the epoch as stored timestamps."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    """Pronounceable fake words (a Zipf-like pick makes some common, most rare)."""
    syllables = ["ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "an", "el", "or"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size)]


def generate(path: Path, sessions: int, messages: int) -> None:
    """Write the benchmark database (schema by the Store, rows by executemany)."""
    from mschat.store.sqlite import SQLiteStore as Store

    print(f"generating {path} ({sessions:,} sessions, {messages:,} messages)…", flush=True)
    started = time.perf_counter()
    Store.open(path).close()
    rng = random.Random(42)
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    now = iso(BASE_TIME)
    with conn:
        conn.execute(
            "INSERT INTO users (id, kind, external_id, name, created, updated, modified, status,"
            " admin) VALUES (1, 'local', ?, ?, ?, ?, ?, 'active', 1)",
            [LOCAL_NAME, LOCAL_NAME, now, now, now],
        )
        conn.executemany(
            "INSERT INTO users (id, kind, external_id, name, created, updated, modified, status)"
            " VALUES (?, 'discord', ?, ?, ?, ?, ?, 'active')",
            [(i, str(1000 + i), f"discord{i}", now, now, now) for i in range(2, 52)],
        )
        rest = messages - BIG_SESSION
        per = rest // (sessions - 1)
        counts = [BIG_SESSION] + [per] * (sessions - 1)
        counts[-1] += rest - per * (sessions - 1)
        session_rows = []
        message_id = 0
        clock = BASE_TIME
        batch: list[tuple] = []
        for index, count in enumerate(counts, start=1):
            creator = 1 if index % 5 else 2 + index % 50
            first = clock
            clock += count * 10
            session_rows.append(
                (
                    index,
                    creator,
                    f"Session {index}: " + " ".join(rng.choices(words, k=3)),
                    "fake/fake-model",
                    index % 7 == 0,
                    "terminal",
                    iso(first),
                    iso(clock),
                    iso(clock),
                )
            )
            for turn in range(count):
                message_id += 1
                role = "user" if turn % 2 == 0 else "assistant"
                text = " ".join(rng.choices(words, weights, k=rng.randint(8, 40)))
                if role == "assistant" and turn % 10 == 1:
                    text += "\n\n```python\nprint('hello')\n```"
                batch.append(
                    (
                        message_id,
                        index,
                        creator if role == "user" else None,
                        role,
                        text,
                        iso(first + turn * 10),
                    )
                )
            if len(batch) >= 50_000:
                conn.executemany(
                    "INSERT INTO messages (id, session_id, author_id, role, content, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    batch,
                )
                batch.clear()
                print(f"  {message_id:,} messages", end="\r", flush=True)
        # sessions first would be nicer, but message_count triggers need them: insert
        # sessions before flushing the remaining messages
        conn.executemany(
            "INSERT INTO sessions (id, creator_id, title, model, public, origin, created,"
            " updated, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            session_rows,
        )
        conn.executemany(
            "INSERT INTO messages (id, session_id, author_id, role, content, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            batch,
        )
        conn.execute(
            "UPDATE sessions SET message_count ="
            " (SELECT count(*) FROM messages m WHERE m.session_id = sessions.id)"
        )
    conn.execute("ANALYZE")
    conn.close()
    print(f"\n  generated in {time.perf_counter() - started:.1f} s", flush=True)


class BenchProvider:
    """An in-process provider streaming a fixed number of chunks."""

    name = "fake"

    def __init__(self, chunks: int = 1000, pause: float = 0.0) -> None:
        self.chunks = chunks
        self.pause = pause

    async def stream_chat(self, request: object) -> AsyncIterator[object]:
        """Markdown-ish chunks, then usage and finish."""
        from mschat.providers.base import FinishChunk, TextChunk, UsageChunk

        # a realistic reply: a paragraph every ~60 tokens, a code block every 200
        pieces = ["Some ", "**bold** ", "text ", "and ", "`code` ", "here. "]
        for index in range(self.chunks):
            if index % 200 == 100:
                yield TextChunk("\n\n```python\nfor i in range(3):\n    print(i)\n```\n\n")
            elif index % 60 == 59:
                yield TextChunk("end.\n\n")
            else:
                yield TextChunk(pieces[index % len(pieces)])
            if self.pause:
                await asyncio.sleep(self.pause)
            elif index % 50 == 0:
                await asyncio.sleep(0)
        yield UsageChunk(prompt_tokens=100, completion_tokens=self.chunks)
        yield FinishChunk("stop")

    def count_tokens(self, model: str, messages: list) -> int | None:
        """No tokenizer."""
        return None

    async def aclose(self) -> None:
        """Nothing to close."""


def services_for(db: Path, provider: BenchProvider):  # type: ignore[no-untyped-def]
    """Services over the benchmark database with the in-process provider."""
    from mschat.config import load_config
    from mschat.core.services import build_services

    home = Path(tempfile.mkdtemp(prefix="mschat-bench-home-"))
    (home / "config.toml").write_text(
        '[general]\ndefault_model = "fake/fake-model"\nuser_name = "bench"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n',
        encoding="utf-8",
    )
    os.environ["MSCHAT_HOME"] = str(home)
    return build_services(load_config(db=db), db=db, providers={"fake": provider})


async def wait(pilot, condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition between pilot pauses."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await pilot.pause(0.001)


async def measure(db: Path, pause: float) -> dict[str, float | int | str]:
    """Run the app headless over the big database and time the four operations."""
    figures: dict[str, float | int | str] = {}
    started = time.perf_counter()
    from mschat.tui.app import make_app
    from mschat.tui.widgets.chat import LiveReply, MessageView

    figures["import mschat.tui.app"] = time.perf_counter() - started
    provider = BenchProvider()
    services = services_for(db, provider)
    app = make_app(services)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait(pilot, lambda: app.ready)
        figures["first interactive screen (import + build + first page)"] = (
            time.perf_counter() - started
        )
        figures["sessions in the first sidebar page"] = len(app.sidebar.sessions)

        t0 = time.perf_counter()
        await app.open_session(1)
        await pilot.pause()
        figures["open the 5,000-message session"] = time.perf_counter() - t0
        figures["messages mounted"] = len(app.chat.query(MessageView))

        # count the live reply's screen updates (smoothness: want >= ~8 a second)
        updates = [0]
        flush = LiveReply._flush

        def counted(live: LiveReply, **options: bool) -> object:
            updates[0] += bool(live.pending)
            return flush(live, **options)

        LiveReply._flush = counted  # type: ignore[method-assign]
        for label, chunk_pause in (("burst", 0.0), (f"paced {pause * 1000:g} ms", pause)):
            provider.pause = chunk_pause
            session = await services.manager.create_session(app.me, title="stream bench")
            await app.open_session(session.id)
            updates[0] = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await app.start_send("stream please", session.id).wait()
            await pilot.pause()
            assert not app.query(LiveReply) and app.status.state == "idle", app.status.state
            wall = time.perf_counter() - wall0
            figures[f"CPU to stream 1,000 chunks ({label})"] = time.process_time() - cpu0
            figures[f"wall to stream 1,000 chunks ({label})"] = wall
            figures[f"live updates shown per second ({label})"] = f"{updates[0] / wall:.1f}"
        LiveReply._flush = flush  # type: ignore[method-assign]

        manager = services.manager
        words = vocabulary(random.Random(42))  # the generator's words, most frequent first
        queries = (words[0], f"{words[1]} {words[2]}", words[3000], "nonexistentword")
        for query in queries:
            t0 = time.perf_counter()
            hits = await manager.search(app.me, query, limit=50)
            figures[f"search {query!r} ({len(hits)} hits shown)"] = time.perf_counter() - t0
        app.exit()
    await services.aclose()
    return figures


def main() -> None:
    """Generate (once) and measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path)
    parser.add_argument(
        "--pace",
        type=float,
        default=0.002,
        help="seconds between chunks for the paced stream (default 0.002)",
    )
    args = parser.parse_args()
    # not under a "mschat-bench*" name: other benchmarks clean those up
    db = args.db or Path(tempfile.gettempdir()) / "tui-bench-cache" / (
        f"{args.sessions}x{args.messages}.db"
    )
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        partial = db.with_suffix(".partial")
        for leftover in db.parent.glob(partial.name + "*"):
            leftover.unlink()
        generate(partial, args.sessions, args.messages)
        partial.rename(db)
    figures = asyncio.run(measure(db, args.pace))
    budgets = {
        "first interactive screen": 1.0,
        "open the 5,000-message session": 0.3,
        "CPU to stream": 0.5,
        "search": 0.2,
    }
    print(f"\nmschat TUI benchmark — {db} (python {sys.version.split()[0]})")
    for name, value in figures.items():
        budget = next((b for key, b in budgets.items() if name.startswith(key)), None)
        if isinstance(value, float):
            mark = "" if budget is None else f"  (budget {budget:g} s: "
            mark += "" if budget is None else ("ok)" if value <= budget else "MISSED)")
            print(f"  {name:<58} {value * 1000:9.1f} ms{mark}")
        else:
            print(f"  {name:<58} {value:>9}")


if __name__ == "__main__":
    main()
