"""Benchmark ``mschat serve-api``: concurrent clients posting to /chat.

The API server runs in its own process (``python -m mschat serve-api``) with
MSCHAT_HOME in a temporary directory and a config pointing at the loopback
fake OpenAI server (its own process too, zero delay). The clients run here on
aiohttp. Afterwards every request's question and reply are counted in the
database: nothing may be lost.

    .venv/bin/python bench/api.py                    # 32 clients for 30 s
    .venv/bin/python bench/api.py --duration 10 --clients 32

Budget (2-core machine): >= 300 requests/s and p99 <= 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.fake_openai import start_process  # noqa: E402


@dataclass
class Results:
    """What the clients saw."""

    latencies: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # every question asked
    ok: list[int] = field(default_factory=list)  # reply message ids of 200 answers
    errors: dict[str, int] = field(default_factory=dict)


def start_api(home: Path, log: Path, profile: str | None) -> tuple[subprocess.Popen, str]:
    """``mschat serve-api --port 0`` with MSCHAT_HOME=home; returns it and its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSCHAT_", "OPENAI_"))}
    env["MSCHAT_HOME"] = str(home)
    handle = log.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            *(["-m", "cProfile", "-o", profile] if profile else []),
            "-m",
            "mschat",
            "serve-api",
            "--port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=handle,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "listening on" in line:
                return process, line.split("listening on", 1)[1].strip()
        if process.poll() is not None:
            raise SystemExit(f"serve-api exited:\n{log.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"serve-api did not start:\n{log.read_text()}")


async def client(
    session: aiohttp.ClientSession,
    url: str,
    index: int,
    stop_at: float,
    turns: int,
    results: Results,
) -> None:
    """One client: ask question after question; every ``turns`` questions a new user."""
    n = 0
    while time.monotonic() < stop_at:
        user = f"bench-{index}-{n // turns}"
        question = f"bench question {index}.{n}"
        n += 1
        results.sent.append(question)
        started = time.perf_counter()
        try:
            async with session.post(
                f"{url}/chat", json={"message": question, "user": user}
            ) as response:
                body = await response.json()
                if response.status == 200:
                    results.ok.append(body["message_id"])
                else:
                    key = f"HTTP {response.status}"
                    results.errors[key] = results.errors.get(key, 0) + 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            key = type(exc).__name__
            results.errors[key] = results.errors.get(key, 0) + 1
        results.latencies.append(time.perf_counter() - started)


async def drive(url: str, clients: int, duration: float, turns: int) -> tuple[Results, float]:
    """Run the clients for ``duration`` seconds; returns results and the elapsed time."""
    results = Results()
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # warm up: one request so imports and the first connection are not measured
        async with session.post(f"{url}/chat", json={"message": "warm up", "user": "warmup"}) as r:
            await r.read()
        started = time.monotonic()
        stop_at = started + duration
        await asyncio.gather(
            *(client(session, url, i, stop_at, turns, results) for i in range(clients))
        )
        elapsed = time.monotonic() - started
    return results, elapsed


def count_lost(db: Path, results: Results) -> tuple[int, int]:
    """(questions missing from the DB, 200 replies not stored complete)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT content FROM messages WHERE role = 'user' AND content LIKE 'bench %'"
            )
        }
        complete = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM messages WHERE role = 'assistant' AND status = 'complete'"
            )
        }
    finally:
        conn.close()
    missing_questions = sum(1 for q in results.sent if q not in stored)
    missing_replies = sum(1 for mid in results.ok if mid not in complete)
    return missing_questions, missing_replies


def resource_cpu() -> float:
    """CPU seconds this process (the clients) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds a process has used so far (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument(
        "--turns",
        type=int,
        default=10,
        help="questions per user/session before a client switches user (10)",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="run the server under cProfile and write its stats here"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mschat-bench-") as tmp:
        home = Path(tmp)
        fake, fake_url = start_process(ROOT, chunk_size=16)
        api = None
        try:
            (home / "config.toml").write_text(
                '[general]\ndefault_model = "fake/fake-model"\n'
                f'[providers.fake]\nbase_url = "{fake_url}"\nmodels = ["fake-model"]\n'
                "max_retries = 0\n",
                encoding="utf-8",
            )
            api, url = start_api(home, home / "serve-api.log", args.profile)
            before = (cpu_seconds(api.pid), cpu_seconds(fake.pid), resource_cpu())
            results, elapsed = asyncio.run(drive(url, args.clients, args.duration, args.turns))
            after = (cpu_seconds(api.pid), cpu_seconds(fake.pid), resource_cpu())
            api.send_signal(signal.SIGTERM)
            code = api.wait(30)
            lost_q, lost_r = count_lost(home / "mschat.db", results)
        finally:
            if api is not None and api.poll() is None:
                api.kill()
            fake.terminate()
            fake.wait(10)
        access_lines = sum(
            1 for line in (home / "serve-api.log").read_text().splitlines() if "POST /chat" in line
        )

    total = len(results.latencies)
    ms = [value * 1000 for value in results.latencies]
    print(f"clients           {args.clients}")
    print(f"duration          {elapsed:.1f} s")
    print(f"requests          {total} ({len(results.ok)} ok, errors: {results.errors or 'none'})")
    print(f"throughput        {total / elapsed:.1f} requests/s   (budget >= 300)")
    print(f"latency p50       {statistics.median(ms):.1f} ms")
    print(f"latency p90       {percentile(ms, 90):.1f} ms")
    print(f"latency p99       {percentile(ms, 99):.1f} ms   (budget <= 200)")
    print(f"latency max       {max(ms):.1f} ms")
    print(f"lost questions    {lost_q}")
    print(f"lost replies      {lost_r}")
    print(f"access log lines  {access_lines}")
    print(f"server exit code  {code} after SIGTERM")
    for name, start, end in zip(
        ("API server", "fake OpenAI", "clients"), before, after, strict=True
    ):
        if start is not None and end is not None:
            used = end - start
            print(
                f"CPU {name:<13} {used:.1f} s ({used / elapsed * 100:.0f}% of one core, "
                f"{used / max(total, 1) * 1000:.2f} ms/request)"
            )
    load = os.getloadavg()
    print(f"load average      {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
