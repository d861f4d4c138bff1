"""The fair queue under load: throughput, waits, per-user order, per backend.

Prints figures; it asserts nothing. Run from the repository root:

    python bench/fair_queue.py [--db URL | --only sqlite|postgresql]
                               [--users 200] [--questions 1000] [--seconds 10]
                               [--latency 0.2] [--slots 8] [--priority-share 0.1]

(Not ``bench/queue.py``: run as a script, that name would shadow the standard
library's ``queue`` module, which the thread pools import.)

Two instances in one process, on one database, each with its own store and
manager (users split between them, as Discord shards split guilds), answer
``--questions`` questions of ``--users`` users arriving evenly over
``--seconds`` seconds. The model is the fake OpenAI server over a real socket,
answering each request after ``--latency`` seconds; the provider has
``max_concurrency = --slots``. A share of the users are priority users.

Figures: throughput (answers per second from the first question to the last
answer), the wait (question submitted -> its turn started, i.e. the queue's
wait plus storing it) p50/p99 for normal and priority users, the most answers
running at once (must not exceed the slots), and the share of questions
answered in the order each user asked them (must be 100%).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def configure_home(base_url: str, slots: int) -> None:
    """A throwaway MSCHAT_HOME whose default model is the fake server, with ``slots``."""
    home = Path(tempfile.mkdtemp(prefix="mschat-bench-queue-"))
    (home / "config.toml").write_text(
        '[general]\ndefault_model = "fake/fake-model"\nuser_name = "bench"\n'
        f'[providers.fake]\nbase_url = "{base_url}"\nmodels = ["fake-model"]\n'
        f"max_concurrency = {slots}\nmax_retries = 0\n",
        encoding="utf-8",
    )
    os.environ["MSCHAT_HOME"] = str(home)


def percentile(ordered: list[float], share: float) -> float:
    """The value below which ``share`` of the sorted values lie."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the load once against the database at ``url``; the raw figures."""
    from mschat.config import load_config
    from mschat.core.events import Completed, Failed, Started
    from mschat.core.services import build_services

    instances = [build_services(load_config(db=url)) for _ in range(2)]
    admin = await instances[0].manager.local_user()
    rng = random.Random(11)
    users = []
    for index in range(args.users):
        services = instances[index % 2]
        user = await services.manager.user("api", f"user{index}")
        if index < args.users * args.priority_share:
            user = await instances[0].manager.update_user(admin, user.id, priority=1)
        users.append((services, user))
    running = 0
    most = 0
    # per question: user index, priority, submitted, started, finished
    rows: list[dict[str, Any]] = []

    async def ask(number: int, who: int) -> None:
        nonlocal running, most
        services, user = users[who]
        row: dict[str, Any] = {"user": who, "priority": user.priority > 0, "n": number}
        row["submitted"] = time.perf_counter()
        rows.append(row)
        async for event in services.manager.ask(user, f"question {number}", new_session=True):
            if isinstance(event, Started):
                row["started"] = time.perf_counter()
                running += 1
                most = max(most, running)
            elif isinstance(event, Completed | Failed):
                row["finished"] = time.perf_counter()
                row["ok"] = isinstance(event, Completed)
                running -= 1

    begin = time.perf_counter()
    tasks = []
    for number in range(args.questions):
        due = begin + number * args.seconds / args.questions
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(ask(number, rng.randrange(args.users))))
    await asyncio.gather(*tasks)
    end = time.perf_counter()
    for services in instances:
        await services.aclose()
    return {"rows": rows, "seconds": end - begin, "most": most}


def report(label: str, figures: dict[str, Any], args: argparse.Namespace) -> None:
    """Print one backend's figures."""
    rows = figures["rows"]
    answered = [r for r in rows if r.get("ok")]
    print(f"  {label}:")
    print(
        f"    answered {len(answered)}/{len(rows)} in {figures['seconds']:.1f} s: "
        f"{len(answered) / figures['seconds']:.1f} answers/s "
        f"(ceiling {args.slots / args.latency:.0f}/s); most running at once: "
        f"{figures['most']} (slots {args.slots})"
    )
    for name, priority in (("normal", False), ("priority", True)):
        waits = sorted(r["started"] - r["submitted"] for r in rows if r["priority"] is priority)
        if waits:
            print(
                f"    wait of {name} users ({len(waits)} questions): "
                f"p50 {percentile(waits, 0.5):.2f} s, p99 {percentile(waits, 0.99):.2f} s"
            )
    in_order = 0
    by_user: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_user.setdefault(row["user"], []).append(row)
    for asked in by_user.values():
        asked.sort(key=lambda r: r["submitted"])
        previous = float("-inf")
        for row in asked:
            if row["started"] >= previous:
                in_order += 1
            previous = row["started"]
    print(f"    answered in order per user: {100 * in_order / len(rows):.1f}%")


def bench(url: str, label: str, args: argparse.Namespace) -> None:
    """Measure one database and print its figures."""
    report(label, asyncio.run(measure(url, args)), args)


def main() -> None:
    """Parse the options, start the fake model, measure each backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="measure this database only (a path or a URL)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--priority-share", type=float, default=0.1)
    args = parser.parse_args()

    from tests.fakes.fake_openai import FakeOpenAIThread

    with FakeOpenAIThread(reply="ok", chunk_size=100, delay=args.latency) as server:
        configure_home(server.base_url, args.slots)
        print(
            f"fair queue: {args.users} users, {args.questions} questions in {args.seconds:g} s, "
            f"model latency {args.latency:g} s, max_concurrency {args.slots}, two instances"
        )
        if args.db:
            bench(args.db, args.db, args)
            return
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory() as tmp:
                bench(str(Path(tmp) / "bench.db"), "SQLite", args)
        if args.only in (None, "postgresql"):
            from tests.pg import Cluster, find_binaries

            binaries = find_binaries()
            if binaries is None:
                print("  PostgreSQL: not installed (no pg_ctl)")
                return
            cluster = Cluster(binaries, durable=True)
            try:
                cluster.start()
                cluster.execute("CREATE DATABASE queue")
                bench(cluster.url("queue"), "PostgreSQL", args)
            finally:
                cluster.stop()


if __name__ == "__main__":
    main()
