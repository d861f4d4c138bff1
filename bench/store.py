"""Store-level latencies of one ask, and search on a million messages, per backend.

Prints figures; it asserts nothing. Run from the repository root:

    python bench/store.py [--db URL | --only sqlite|postgresql] [--asks 300]
                          [--search-messages 1000000] [--huge-mb 20]

Without ``--db`` it measures SQLite (a file in a temporary directory) and
PostgreSQL (a throwaway cluster of the machine's binaries, as the tests start
one). With ``--db postgresql://…`` it measures that database (it must be empty
or mschat's, and is filled: use a scratch one).

One ask's store calls are those the core makes: the user, the session, the rate
count, the turn's write block (question + empty reply), the history page, four
content flushes, and the final write block (reply, api_calls row, session time).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mschat.core.models import utcnow  # noqa: E402
from mschat.store import Store, open_store  # noqa: E402

WORDS = (
    "sqlite wal index query table session model token stream reply python async await "
    "discord bot user public private title search cache memory disk page vacuum journal "
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt labore dolore magna aliqua enim minim veniam quis nostrud exercitation"
).split()


def stats(name: str, times: list[float]) -> None:
    """One line: median, p99 and max in milliseconds."""
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"  {name:<34} median {statistics.median(ordered) * 1000:7.2f} ms"
        f"   p99 {p99 * 1000:7.2f}   max {ordered[-1] * 1000:7.2f}   (n={len(ordered)})"
    )


def one_ask(store: Store, user_id: int, session_id: int, timings: dict[str, list[float]]) -> None:
    """The store calls of one ask, each timed."""

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        timings.setdefault(name, []).append(time.perf_counter() - start)
        return result

    def start_turn() -> Any:
        # as a user with a rate limit asks: the check runs under the user's lock
        with store.write():
            store.lock_user(user_id)
            store.user_asks(user_id, since="2000-01-01T00:00:00+00:00", live_after=None)
            store.add_message(session_id=session_id, author_id=user_id, role="user", content="q")
            return store.add_reply(session_id, "fake/fake-model", utcnow())

    def finish(reply_id: int) -> None:
        store.finish_reply(
            reply_id,
            session_id,
            {"status": "complete", "content": "a" * 400},
            {"message_id": reply_id, "session_id": session_id, "status": "ok"},
        )

    begin = time.perf_counter()
    timed("find_user", lambda: store.find_user("api", "bench"))
    timed("get_session", lambda: store.get_session(session_id))
    reply = timed("start turn (rate limit checked)", start_turn)
    timed("history page", lambda: store.messages(session_id, limit=50, before_id=reply.id))
    for part in range(1, 5):
        content = "a" * 100 * part
        timed("content flush", lambda: store.update_message(reply.id, content=content))  # noqa: B023
    timed("finish (finish_reply)", lambda: finish(reply.id))
    timings.setdefault("= one ask, all calls", []).append(time.perf_counter() - begin)


def ask_latencies(store: Store, asks: int) -> None:
    """Store calls of ``asks`` asks in one session."""
    user = store.create_user(kind="api", external_id="bench", name="bench", status="active")
    session = store.create_session(creator_id=user.id, title="bench", origin="api")
    timings: dict[str, list[float]] = {}
    for _ in range(20):  # warm up (connections, caches)
        one_ask(store, user.id, session.id, {})
    for _ in range(asks):
        one_ask(store, user.id, session.id, timings)
    for name, times in timings.items():
        stats(name, times)


def fill(store: Store, messages: int, seed: int = 7) -> None:
    """``messages`` random messages in 1,000 public sessions, fast (COPY or executemany)."""
    rng = random.Random(seed)
    now = utcnow()
    user = store.create_user(kind="discord", external_id="bulk", name="bulk", status="active")
    first = store.create_session(creator_id=user.id, title="bulk 0", origin="discord_guild").id
    sessions = [first] + [
        store.create_session(creator_id=user.id, title=f"bulk {i}", origin="discord_guild").id
        for i in range(1, 1000)
    ]
    for session_id in sessions:
        store.update_session(session_id, public=1)
    rows = (
        (
            sessions[i % len(sessions)],
            user.id if i % 2 == 0 else None,
            "user" if i % 2 == 0 else "assistant",
            " ".join(rng.choices(WORDS, k=rng.randint(8, 40))),
            now,
        )
        for i in range(messages)
    )
    columns = "session_id, author_id, role, content, created"
    with store.write() as conn:
        if store.backend == "postgresql":
            with conn.cursor().copy(f"COPY messages ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        else:
            conn.executemany(  # type: ignore[attr-defined]
                f"INSERT INTO messages ({columns}) VALUES (?, ?, ?, ?, ?)", rows
            )


def huge(megabytes: float, seed: int = 11) -> str:
    """A pasted log of ``megabytes`` MB full of the searched words."""
    rng = random.Random(seed)
    lines, size = [], 0
    while size < megabytes * 1_000_000:
        line = " ".join(rng.choices(WORDS, k=12))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def searches(store: Store, label: str) -> None:
    """Typical searches, timed (5 runs each, after one to warm up)."""
    for text in (
        "python",
        "session tok",
        "vacuum journal",
        "nomatchword",
        "write-ahead",  # literal: both words are common, the term in no message
        "C++",  # literal: "c" is in no message
        "wal,",  # prose punctuation, then a common word
    ):
        store.search(text, user_id=None)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            hits = store.search(text, user_id=1, include_public=True)
            times.append(time.perf_counter() - start)
        stats(f"search {text!r} {label} ({len(hits)} hits)", times)


def bench(url: str, name: str, args: argparse.Namespace) -> None:
    """Every figure of one backend."""
    print(f"{name}: {open_store(url).url}")
    store = open_store(url)
    print(" one ask's store calls (one thread)")
    ask_latencies(store, args.asks)
    store.close()
    if not args.search_messages:
        return
    store = open_store(url)
    start = time.perf_counter()
    fill(store, args.search_messages)
    if store.backend == "postgresql":
        with store.write() as conn:
            conn.execute("ANALYZE")  # type: ignore[attr-defined]
    print(f" filled {args.search_messages:,} messages in {time.perf_counter() - start:.1f} s")
    searches(store, f"in {args.search_messages:,}")
    start = time.perf_counter()
    session_id = store.list_sessions(None, limit=1)[0].id
    store.add_message(session_id=session_id, role="user", content=huge(args.huge_mb))
    print(f" stored one {args.huge_mb:g} MB message in {time.perf_counter() - start:.1f} s")
    searches(store, f"+ {args.huge_mb:g} MB")
    store.close()


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a database URL or path (default: both backends, fresh)")
    parser.add_argument("--asks", type=int, default=300)
    parser.add_argument("--search-messages", type=int, default=1_000_000)
    parser.add_argument("--huge-mb", type=float, default=20.0)
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one backend")
    args = parser.parse_args()
    if args.db:
        bench(args.db, "given database", args)
        return
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as folder:
            bench(str(Path(folder) / "bench.db"), "SQLite", args)
    if args.only == "sqlite":
        return
    from tests.pg import Cluster, find_binaries

    binaries = find_binaries()
    if binaries is None:
        print("PostgreSQL: not installed (no pg_ctl)")
        return
    cluster = Cluster(binaries, durable=True)  # commits wait for the WAL, as in production
    try:
        cluster.start()
        cluster.execute("CREATE DATABASE bench")
        bench(cluster.url("bench"), "PostgreSQL", args)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
