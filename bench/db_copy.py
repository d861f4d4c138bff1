"""``mschat db copy`` of a large history in each direction: wall time and peak memory.

Prints figures; it asserts nothing. Run from the repository root:

    python bench/db_copy.py [--messages 1000000] [--sessions 20000] [--batch-size 1000]
                         [--pg URL]

A SQLite history of ``--messages`` messages (a question and a reply in turn,
8 to 40 words each) in ``--sessions`` sessions of 100 users, with an api_calls
row per reply, is copied to PostgreSQL, back to a new SQLite file, and then
copied again (a re-run that finds nothing to do). Each copy is a real
``mschat db copy`` process; its peak resident memory is its own (wait4).
Without ``--pg`` a throwaway cluster of the machine's binaries is started
(durable: commits wait for the WAL); with ``--pg`` that database is used (it
must be empty: use a scratch one).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = (
    "sqlite wal index query table session model token stream reply python async await "
    "discord bot user public private title search cache memory disk page vacuum journal "
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt labore dolore magna aliqua enim minim veniam quis nostrud exercitation"
).split()


def populate(path: Path, sessions: int, messages: int, seed: int = 7) -> None:
    """A SQLite history made fast: executemany inserts in one transaction."""
    from mschat.store.sqlite import SQLiteStore

    store = SQLiteStore.open(path)
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)

    def at(index: int) -> str:
        return (start + timedelta(seconds=index)).isoformat(timespec="microseconds")

    conn = store.conn
    with store.write():
        conn.executemany(
            "INSERT INTO users (kind, external_id, name, created, updated, modified, status) "
            "VALUES ('discord', ?, ?, ?, ?, ?, 'active')",
            [(str(1000 + i), f"user {i}", at(0), at(0), at(0)) for i in range(100)],
        )
        conn.executemany(
            "INSERT INTO sessions (creator_id, title, model, public, origin, created, updated, "
            "modified) VALUES (?, ?, 'fake/fake-model', ?, 'discord_guild', ?, ?, ?)",
            [(1 + i % 100, f"session {i}", i % 2, at(i), at(i), at(i)) for i in range(sessions)],
        )
        conn.executemany(
            "INSERT INTO messages (session_id, author_id, role, content, model, created, "
            "tokens_in, tokens_out) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    1 + (i // 2) % sessions,
                    1 + (i // 2) % 100 if i % 2 == 0 else None,
                    "user" if i % 2 == 0 else "assistant",
                    " ".join(rng.choices(WORDS, k=rng.randint(8, 40))),
                    None if i % 2 == 0 else "fake/fake-model",
                    at(i),
                    None if i % 2 == 0 else 20,
                    None if i % 2 == 0 else 30,
                )
                for i in range(messages)
            ),
        )
        conn.execute(
            "INSERT INTO api_calls (message_id, session_id, user_id, provider, model, started, "
            "latency_ms, status, prompt_tokens, completion_tokens) "
            "SELECT id, session_id, 1, 'fake', model, created, 40, 'ok', 20, 30 "
            "FROM messages WHERE role = 'assistant'"
        )
    store.close()


def copy(source: str, dest: str, batch: int) -> tuple[float, float, str]:
    """Run ``mschat db copy``: seconds, peak MB, its last line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "mschat", "db", "copy", "--batch-size", str(batch), source, dest],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"copy failed:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output.strip().splitlines()[-1]


def main() -> None:
    """Populate, copy both ways, copy again; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--pg", help="an empty PostgreSQL database's URL (default: a new cluster)")
    args = parser.parse_args()
    cluster = None
    url = args.pg
    if url is None:
        from tests.pg import Cluster, find_binaries

        binaries = find_binaries()
        if binaries is None:
            raise SystemExit("no PostgreSQL binaries (apt-get install postgresql)")
        cluster = Cluster(binaries, durable=True)
        cluster.start()
        cluster.execute("CREATE DATABASE bench")
        url = cluster.url("bench")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            source, back = Path(scratch) / "source.db", Path(scratch) / "back.db"
            start = time.perf_counter()
            populate(source, args.sessions, args.messages)
            size = source.stat().st_size / 1e6
            print(
                f"history: {args.messages:,} messages, {args.messages // 2:,} api_calls, "
                f"{args.sessions:,} sessions; SQLite file {size:.0f} MB "
                f"(made in {time.perf_counter() - start:.1f} s); batch {args.batch_size}"
            )
            for name, src, dst in (
                ("SQLite -> PostgreSQL", str(source), url),
                ("PostgreSQL -> SQLite", url, str(back)),
                ("again (nothing to do)", url, str(back)),
            ):
                seconds, peak, last = copy(src, dst, args.batch_size)
                print(f"  {name:<22} {seconds:7.1f} s   peak {peak:5.0f} MB   {last}")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
