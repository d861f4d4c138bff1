"""Cold `mschat ask` wall time and `mschat sessions search` on large databases.

Prints figures; it asserts nothing. Run from the repository root:

    python bench/ask.py [--runs 15] [--search-messages 1000000] [--huge-mb 20]

The search is also timed on the same database plus one huge message (a pasted
log of --huge-mb megabytes full of the searched words: FTS5's snippet() was
quadratic in its matches). Budget: 0.3 s for the whole command.

mschat is installed non-editable into a temporary directory first, so the
figures are those of an installed copy, not of the source tree.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.fake_openai import start_process  # noqa: E402

WORDS = (
    "sqlite wal index query table session model token stream reply python async await "
    "discord bot user public private title search cache memory disk page vacuum journal "
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt labore dolore magna aliqua enim minim veniam quis nostrud exercitation"
).split()


def install(target: Path) -> None:
    """pip install the project (no deps: the current venv has them) into ``target``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
    )


def populate(db: Path, sessions: int, messages: int, seed: int = 7) -> None:
    """Fill a database quickly with one transaction of executemany inserts."""
    from mschat.core.models import utcnow
    from mschat.store.sqlite import SQLiteStore as Store

    store = Store.open(db)
    rng = random.Random(seed)
    now = utcnow()
    conn = store.conn
    with store.write():
        conn.execute(
            "INSERT INTO users (kind, external_id, name, created, updated, modified, status, "
            "admin) VALUES ('discord', 'bulk', 'bulk', ?, ?, ?, 'active', 0)",
            [now, now, now],
        )
        user_id = conn.execute("SELECT id FROM users WHERE external_id = 'bulk'").fetchone()[0]
        conn.executemany(
            "INSERT INTO sessions (creator_id, title, model, public, origin, created, updated, "
            "modified) VALUES (?, ?, 'fake/fake-model', 1, 'discord_guild', ?, ?, ?)",
            [(user_id, f"bulk session {i}", now, now, now) for i in range(sessions)],
        )
        first = conn.execute("SELECT min(id) FROM sessions").fetchone()[0]
        rows = (
            (
                first + (i % sessions),
                user_id if i % 2 == 0 else None,
                "user" if i % 2 == 0 else "assistant",
                " ".join(rng.choices(WORDS, k=rng.randint(8, 40))),
                now,
            )
            for i in range(messages)
        )
        conn.executemany(
            "INSERT INTO messages (session_id, author_id, role, content, created) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    store.close()


def add_huge_message(source: Path, db: Path, megabytes: float, seed: int = 11) -> None:
    """Copy ``source`` to ``db`` and add one message of ``megabytes`` MB, the newest."""
    from mschat.store.sqlite import SQLiteStore as Store

    shutil.copy(source, db)
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < megabytes * 1_000_000:
        line = " ".join(rng.choices(WORDS, k=12))
        words.append(line)
        size += len(line) + 1
    store = Store.open(db)
    session_id = store.conn.execute("SELECT max(id) FROM sessions").fetchone()[0]
    store.add_message(session_id=session_id, role="user", content="\n".join(words))
    store.close()


def timed(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Wall times of ``runs`` runs of a command (each must succeed)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{command} failed: {done.stderr}")
    return times


def report(label: str, times: list[float]) -> float:
    """Print median / min / max and return the median."""
    median = statistics.median(times)
    print(
        f"{label:<48} median {median * 1000:7.1f} ms   min {min(times) * 1000:7.1f}"
        f"   max {max(times) * 1000:7.1f}   (n={len(times)})"
    )
    return median


def main() -> None:
    """Run every measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--big-messages", type=int, default=100_000)
    parser.add_argument("--search-messages", type=int, default=1_000_000)
    parser.add_argument("--huge-mb", type=float, default=20.0)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "mschat-bench"))
    args = parser.parse_args()

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mschat-ask-"))
    target = work / "site"
    install(target)
    fake, url = start_process(ROOT, chunk_size=8)
    try:
        home = work / "home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{url}"\nmodels = ["fake-model"]\n'
        )
        env = {**os.environ, "MSCHAT_HOME": str(home), "PYTHONPATH": str(target)}
        env.pop("OPENAI_API_KEY", None)
        ask = [sys.executable, "-m", "mschat", "ask", "Say hello"]
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
        report("python -c pass", timed([sys.executable, "-c", "pass"], env, args.runs))
        try:
            report(
                'python -c "import openai"',
                timed([sys.executable, "-c", "import openai"], env, args.runs),
            )
        except SystemExit:
            print("openai is not installed; skipped")
        subprocess.run(ask, env=env, capture_output=True, check=True)  # create the DB
        empty = report("mschat ask (empty DB)", timed(ask, env, args.runs))

        big = cache / f"big-{args.big_messages}.db"
        if not big.exists():
            populate(big, sessions=max(1, args.big_messages // 100), messages=args.big_messages)
        shutil.copy(big, home / "mschat.db")
        with_big = report(
            f"mschat ask ({args.big_messages:,} messages)", timed(ask, env, args.runs)
        )
        print(f"{'':<48} {100 * (with_big / empty - 1):+.1f}% vs empty (budget: within 10%)")

        huge = cache / f"search-{args.search_messages}.db"
        if not huge.exists():
            print(f"building a {args.search_messages:,}-message database (cached in {cache})...")
            populate(
                huge, sessions=max(1, args.search_messages // 100), messages=args.search_messages
            )
        env["MSCHAT_DB"] = str(huge)
        search = [sys.executable, "-m", "mschat", "sessions", "search", "--all", "vacuum journal"]
        report(f"mschat sessions search ({args.search_messages:,})", timed(search, env, args.runs))
        rare = [sys.executable, "-m", "mschat", "sessions", "search", "--all", "exercitation"]
        report("  (single common word)", timed(rare, env, max(3, args.runs // 3)))

        with_huge = cache / f"search-{args.search_messages}-huge-{args.huge_mb:g}mb.db"
        if not with_huge.exists():
            print(f"adding a {args.huge_mb:g} MB message (cached in {cache})...")
            add_huge_message(huge, with_huge, args.huge_mb)
        env["MSCHAT_DB"] = str(with_huge)
        label = f"  + one {args.huge_mb:g} MB message"
        report(label, timed(search, env, args.runs))
        report(f"{label} (single common word)", timed(rare, env, max(3, args.runs // 3)))
    finally:
        fake.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
