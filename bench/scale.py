"""Scale-out: ``/chat`` on several API instances over one database, and asks from 4 processes.

1. ``/chat`` throughput and latency (p50/p99) with 32 clients against 1, 2 and 4
   ``mschat serve-api`` processes on one PostgreSQL database, and 1 on SQLite.
   The load generator is its own process (``--drive``); with several instances
   it sends each request to the next instance in turn, as a round-robin load
   balancer would, so one user's consecutive questions reach different
   instances (their current session is shared through the database).
2. 4 processes each asking 250 questions on each backend: the wall time, and
   afterwards in the database 0 lost, 0 duplicated, 0 errors.

Every server runs in its own process: the fake OpenAI server (zero delay), the
API instances, the ask workers, and a throwaway PostgreSQL cluster of the
machine's binaries (``tests/pg.py``) configured as a small production server:
fsync, synchronous_commit and full_page_writes on (a commit waits for the WAL
on disk, as answered questions must survive a crash), the rest PostgreSQL's
defaults. The settings in effect are printed. Prints figures; asserts nothing.

Run from the repository root (about four minutes with the defaults):

    python -m bench.scale
    python -m bench.scale --only chat --duration 10 --instances 1,4
    python -m bench.scale --only asks --cli        # real `mschat ask` processes
    python -m bench.scale --db postgresql://…      # an existing scratch database server

Budget (2-core machine): one PostgreSQL instance reaches at least 0.7× the
``/chat`` throughput of one SQLite instance; nothing lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import cpu_seconds, percentile, start_api  # noqa: E402
from tests.fakes.fake_openai import start_process  # noqa: E402

#: the PostgreSQL settings printed with the figures
SHOWN_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
)


# ---- the databases ------------------------------------------------------------------


class Databases:
    """Fresh databases for each run: SQLite files, PostgreSQL databases of one server."""

    def __init__(self, folder: Path, server: str | None) -> None:
        self.folder = folder
        self.server = server  # a postgresql:// URL of a database to create others from
        self.cluster: Any = None
        self.count = itertools.count(1)

    def start(self) -> None:
        """Start a throwaway cluster unless a server was given."""
        if self.server is not None:
            return
        from tests.pg import Cluster, find_binaries

        binaries = find_binaries()
        if binaries is None:
            raise SystemExit("PostgreSQL is not installed (no pg_ctl); give --db postgresql://…")
        # durable: fsync and synchronous_commit stay on, as in production
        self.cluster = Cluster(binaries, durable=True)
        self.cluster.start()
        self.server = self.cluster.url()

    def stop(self) -> None:
        """Stop the throwaway cluster, if one was started."""
        if self.cluster is not None:
            self.cluster.stop()

    def new(self, backend: str, name: str) -> str:
        """The URL (or path) of a new, empty database."""
        label = f"{name}_{next(self.count)}"
        if backend == "sqlite":
            return str(self.folder / f"{label}.db")
        import psycopg

        assert self.server is not None
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE mschat_bench_{label}")  # type: ignore[arg-type]
        return self.server.rsplit("/", 1)[0] + f"/mschat_bench_{label}"

    def settings(self) -> dict[str, str]:
        """The server's settings that matter here."""
        import psycopg

        assert self.server is not None
        with psycopg.connect(self.server) as conn:
            return {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index,arg-type]
                for name in SHOWN_SETTINGS
            }


def write_home(home: Path, db: str, fake_url: str) -> Path:
    """An MSCHAT_HOME whose config uses ``db`` and the fake model; returns it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f"[database]\nurl = {json.dumps(db)}\n"
        '[general]\ndefault_model = "fake/fake-model"\nuser_name = "bench"\n'
        f'[providers.fake]\nbase_url = "{fake_url}"\nmodels = ["fake-model"]\n'
        "max_retries = 0\n",
        encoding="utf-8",
    )
    return home


def rows(db: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one query (``?`` placeholders) on a database of either backend."""
    from mschat.store import open_store
    from tests.dbs import sql

    store = open_store(db)
    try:
        return sql(store, query, params)
    finally:
        store.close()


@dataclass
class Check:
    """What the database holds after a run, against what was sent."""

    lost: int = 0
    duplicated: int = 0
    unfinished: int = 0  # replies not stored complete

    def __str__(self) -> str:
        return f"lost {self.lost}, duplicated {self.duplicated}, not complete {self.unfinished}"


def check(db: str, prefix: str, sent: list[str], answered: list[int]) -> Check:
    """Every sent question stored once, with one reply; every answered reply complete."""
    stored: dict[str, int] = {
        content: int(count)
        for content, count in rows(
            db,
            "SELECT content, count(*) FROM messages WHERE role = 'user' "
            "AND content LIKE ? GROUP BY content",
            (f"{prefix}%",),
        )
    }
    complete = {
        int(mid)
        for (mid,) in rows(
            db, "SELECT id FROM messages WHERE role = 'assistant' AND status = 'complete'"
        )
    }
    # one reply row per question in every session
    (uneven,) = rows(
        db,
        "SELECT count(*) FROM (SELECT session_id FROM messages GROUP BY session_id "
        "HAVING sum(CASE WHEN role = 'user' THEN 1 ELSE 0 END) "
        "<> sum(CASE WHEN role = 'assistant' THEN 1 ELSE 0 END)) AS odd",
    )[0]
    return Check(
        lost=sum(1 for q in sent if q not in stored),
        duplicated=sum(count - 1 for count in stored.values()) + int(uneven),
        unfinished=sum(1 for mid in answered if mid not in complete),
    )


def postgres_pids(cluster: Any) -> list[int]:
    """The processes of a throwaway cluster (the postmaster and its children)."""
    if cluster is None:
        return []
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups  # name → callable returning pids
        self.before: dict[str, dict[int, float]] = {}
        self.used: dict[str, float] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        sample = {}
        for name, pids in self.groups.items():
            sample[name] = {pid: cpu_seconds(pid) or 0.0 for pid in pids()}
        return sample

    def start(self) -> None:
        """Remember the CPU time of every process now."""
        self.before = self._sample()

    def stop(self) -> None:
        """CPU used since start (processes born meanwhile count from zero)."""
        after = self._sample()
        for name, now in after.items():
            then = self.before.get(name, {})
            self.used[name] = sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items())


# ---- /chat: the load generator (its own process) ------------------------------------


@dataclass
class Load:
    """What the load generator saw."""

    latencies: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    ok: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    cpu: float = 0.0


async def _client(
    session: Any, urls: Iterator[str], index: int, stop_at: float, turns: int, load: Load
) -> None:
    """Ask question after question; a new user every ``turns`` questions."""
    import aiohttp

    n = 0
    while time.monotonic() < stop_at:
        user = f"scale-{index}-{n // turns}"
        question = f"scale question {index}.{n}"
        n += 1
        load.sent.append(question)
        started = time.perf_counter()
        try:
            async with session.post(
                f"{next(urls)}/chat", json={"message": question, "user": user}
            ) as response:
                body = await response.json()
                if response.status == 200:
                    load.ok.append(body["message_id"])
                else:
                    key = f"HTTP {response.status}: {body.get('error', {}).get('code', '?')}"
                    load.errors[key] = load.errors.get(key, 0) + 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            key = type(exc).__name__
            load.errors[key] = load.errors.get(key, 0) + 1
        load.latencies.append(time.perf_counter() - started)


async def _drive(urls: list[str], clients: int, duration: float, turns: int) -> Load:
    import aiohttp

    load = Load()
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for url in urls:  # warm up each instance: imports and first connections
            for i in range(4):
                async with session.post(
                    f"{url}/chat", json={"message": "warm up", "user": f"warmup-{i}"}
                ) as r:
                    await r.read()
        rotation = itertools.cycle(urls)  # round robin per request, as a load balancer
        started = time.monotonic()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        stop_at = started + duration
        await asyncio.gather(
            *(_client(session, rotation, i, stop_at, turns, load) for i in range(clients))
        )
        load.elapsed = time.monotonic() - started
        end = resource.getrusage(resource.RUSAGE_SELF)
        load.cpu = end.ru_utime + end.ru_stime - cpu.ru_utime - cpu.ru_stime
    return load


def drive_main(args: argparse.Namespace) -> None:
    """The load generator process: drive, then print its results as JSON."""
    load = asyncio.run(_drive(args.drive.split(","), args.clients, args.duration, args.turns))
    print(json.dumps(load.__dict__))


# ---- /chat: one configuration -------------------------------------------------------


@dataclass
class ChatRow:
    """The figures of one /chat configuration."""

    label: str
    load: Load
    check: Check
    cpu: dict[str, float]

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return len(self.load.latencies) / self.load.elapsed


def run_chat(
    label: str,
    db: str,
    instances: int,
    fake_url: str,
    folder: Path,
    args: argparse.Namespace,
    cluster: Any,
    fake_pid: int,
) -> ChatRow:
    """Start ``instances`` API servers on ``db``, drive them, stop them, check the database."""
    servers: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for i in range(instances):
            home = write_home(folder / f"{label}-api{i}", db, fake_url)
            process, url = start_api(home, home / "serve-api.log", None)
            servers.append(process)
            urls.append(url)
        meter = CpuMeter(
            {
                "API": lambda: [s.pid for s in servers],
                "PostgreSQL": lambda: postgres_pids(cluster) if "://" in db else [],
                "fake model": lambda: [fake_pid],
            }
        )
        meter.start()
        spies = (
            [
                subprocess.Popen(
                    [
                        args.spy_bin,
                        "record",
                        "--pid",
                        str(s.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "250",
                        "--nonblocking",
                        "--gil",
                        "--output",
                        str(Path(args.spy) / f"{label}-{i}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i, s in enumerate(servers)
            ]
            if args.spy
            else []
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.scale",
                "--drive",
                ",".join(urls),
                "--clients",
                str(args.clients),
                "--duration",
                str(args.duration),
                "--turns",
                str(args.turns),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        meter.stop()
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        if done.returncode:
            raise SystemExit(f"the load generator failed:\n{done.stderr}")
        load = Load(**json.loads(done.stdout))
        meter.used["load generator"] = load.cpu
    finally:
        for process in servers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in servers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    return ChatRow(label, load, check(db, "scale question", load.sent, load.ok), meter.used)


def print_chat(rows_: list[ChatRow], clients: int) -> None:
    """The /chat table."""
    print(f"\n/chat, {clients} clients, fake model at zero delay")
    print(
        f"  {'configuration':<24}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'errors':>8}  database check; CPU ms/request"
    )
    for row in rows_:
        ms = [v * 1000 for v in row.load.latencies]
        total = len(ms)
        errors = sum(row.load.errors.values())
        cpu = ", ".join(
            f"{name} {used / max(total, 1) * 1000:.2f}" for name, used in row.cpu.items() if used
        )
        print(
            f"  {row.label:<24}{total:>9}{row.throughput:>8.0f}{statistics.median(ms):>8.1f}"
            f"{percentile(ms, 99):>8.1f}{errors:>8}  {row.check}; {cpu}"
        )
        if row.load.errors:
            print(f"  {'':<24}errors: {row.load.errors}")
    # each round's PostgreSQL row against the SQLite row measured just before it
    ratios = [
        pg.throughput / sqlite.throughput
        for sqlite, pg in itertools.pairwise(rows_)
        if sqlite.label.startswith("SQLite") and pg.label == "PostgreSQL, 1 instance"
    ]
    if ratios:
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        print(
            f"  PostgreSQL 1 instance / SQLite 1 instance: {statistics.median(ratios):.2f}×"
            f"{f' (median of {shown})' if len(ratios) > 1 else ''}   (budget ≥ 0.7×)"
        )


# ---- 4 processes × 250 asks ----------------------------------------------------------


async def _ask_loop(index: int, asks: int) -> dict[str, Any]:
    """``asks`` questions through the core, each in a new session, as ``mschat ask`` does."""
    from mschat.config import load_config
    from mschat.core.errors import MschatError
    from mschat.core.events import Completed, Failed
    from mschat.core.services import build_services

    services = build_services(load_config())
    manager = services.manager
    errors: dict[str, int] = {}
    answered: list[int] = []
    try:
        user = await manager.local_user()
        print("ready", flush=True)
        sys.stdin.readline()  # the go signal
        for n in range(asks):
            try:
                async for event in manager.ask(user, f"ask {index}.{n}", new_session=True):
                    if isinstance(event, Completed):
                        answered.append(event.message.id)
                    elif isinstance(event, Failed):
                        errors[str(event.error)] = errors.get(str(event.error), 0) + 1
            except MschatError as error:
                errors[str(error)] = errors.get(str(error), 0) + 1
    finally:
        await services.aclose()
    return {"answered": answered, "errors": errors}


def asker_main(args: argparse.Namespace) -> None:
    """An ask worker process: wait for the go, ask, print its results as JSON."""
    print(json.dumps(asyncio.run(_ask_loop(args.asker, args.asks))))


@dataclass
class AskRow:
    """The figures of one ask run."""

    label: str
    wall: float
    asks: int
    errors: dict[str, int]
    check: Check


def run_asks_in_core(label: str, db: str, home: Path, args: argparse.Namespace) -> AskRow:
    """``args.processes`` processes, each looping ``args.asks`` asks through the core."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSCHAT_", "OPENAI_"))}
    env["MSCHAT_HOME"] = str(home)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.scale", "--asker", str(i), "--asks", str(args.asks)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(args.processes)
    ]
    try:
        for worker in workers:  # each has built its services and connected
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit("an ask worker did not start")
        started = time.monotonic()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=600)[0] for worker in workers]
        wall = time.monotonic() - started
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    answered: list[int] = []
    errors: dict[str, int] = {}
    for output in outputs:
        result = json.loads(output)
        answered += result["answered"]
        for key, count in result["errors"].items():
            errors[key] = errors.get(key, 0) + count
    sent = [f"ask {i}.{n}" for i in range(args.processes) for n in range(args.asks)]
    return AskRow(label, wall, len(sent), errors, check(db, "ask ", sent, answered))


def run_asks_in_cli(label: str, db: str, home: Path, args: argparse.Namespace) -> AskRow:
    """``args.processes`` loops, each running ``args.asks`` real ``mschat ask`` commands."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSCHAT_", "OPENAI_"))}
    env["MSCHAT_HOME"] = str(home)
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def loop(index: int) -> None:
        for n in range(args.asks):
            done = subprocess.run(
                [sys.executable, "-m", "mschat", "ask", "--no-stream", f"ask {index}.{n}"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                key = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit"
                with lock:
                    errors[key] = errors.get(key, 0) + 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(args.processes)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    sent = [f"ask {i}.{n}" for i in range(args.processes) for n in range(args.asks)]
    answered = [int(mid) for (mid,) in rows(db, "SELECT id FROM messages WHERE role = 'assistant'")]
    return AskRow(label, wall, len(sent), errors, check(db, "ask ", sent, answered))


def print_asks(rows_: list[AskRow], args: argparse.Namespace) -> None:
    """The asks table."""
    how = "`mschat ask` commands" if args.cli else "asks through the core"
    print(f"\n{args.processes} processes × {args.asks} {how}, each in a new session")
    print(f"  {'backend':<24}{'asks':>6}{'wall s':>8}{'asks/s':>8}{'errors':>8}  database check")
    for row in rows_:
        errors = sum(row.errors.values())
        print(
            f"  {row.label:<24}{row.asks:>6}{row.wall:>8.1f}{row.asks / row.wall:>8.0f}"
            f"{errors:>8}  {row.check}"
        )
        if row.errors:
            print(f"  {'':<24}errors: {row.errors}")


# ---- main ---------------------------------------------------------------------------


@contextmanager
def fake_model() -> Iterator[tuple[Any, str]]:
    """The fake OpenAI server in its own process, zero delay."""
    process, url = start_process(ROOT, chunk_size=16)
    try:
        yield process, url
    finally:
        process.terminate()
        process.wait(10)


def parse_args() -> argparse.Namespace:
    """The options (and the hidden ones of the helper processes)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["chat", "asks"], help="one of the two parts")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per /chat run (20)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent /chat clients (32)")
    parser.add_argument("--turns", type=int, default=10, help="questions per /chat user (10)")
    parser.add_argument(
        "--instances", default="1,2,4", help="API instances on PostgreSQL, comma-separated"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of the /chat configurations (1)"
    )
    parser.add_argument("--processes", type=int, default=4, help="ask processes (4)")
    parser.add_argument("--asks", type=int, default=250, help="asks per process (250)")
    parser.add_argument(
        "--cli", action="store_true", help="real `mschat ask` commands instead of a core loop"
    )
    parser.add_argument("--db", help="a postgresql:// URL of a server to create databases on")
    parser.add_argument(
        "--spy", metavar="DIR", help="record each API instance with py-spy into DIR (raw stacks)"
    )
    parser.add_argument("--spy-bin", default="py-spy", help=argparse.SUPPRESS)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--asker", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    """Run the benchmark and print its figures."""
    args = parse_args()
    if args.drive:
        drive_main(args)
        return
    if args.asker is not None:
        asker_main(args)
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mschat-scale-") as tmp, fake_model() as fake:
        folder = Path(tmp)
        databases = Databases(folder, args.db)
        databases.start()
        try:
            settings = databases.settings()
            print("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
            print(f"machine: {os.cpu_count()} CPUs")
            if args.only != "asks":
                chat_rows = []
                configurations = [("sqlite", 1)] + [
                    ("postgresql", int(n)) for n in args.instances.split(",")
                ]
                # rounds interleave the configurations: a busy machine slows them alike
                for backend, n in configurations * args.repeat:
                    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
                    label = f"{name}, {n} instance{'s' if n > 1 else ''}"
                    db = databases.new(backend, f"chat{n}")
                    chat_rows.append(
                        run_chat(
                            label, db, n, fake[1], folder, args, databases.cluster, fake[0].pid
                        )
                    )
                    print(f"  … {label}: {chat_rows[-1].throughput:.0f} req/s", flush=True)
                print_chat(chat_rows, args.clients)
            if args.only != "chat":
                ask_rows = []
                for backend in ("sqlite", "postgresql"):
                    db = databases.new(backend, "asks")
                    home = write_home(folder / f"asks-{backend}", db, fake[1])
                    run = run_asks_in_cli if args.cli else run_asks_in_core
                    label = "SQLite" if backend == "sqlite" else "PostgreSQL"
                    ask_rows.append(run(label, db, home, args))
                print_asks(ask_rows, args)
        finally:
            databases.stop()
    load = os.getloadavg()
    print(
        f"\ntotal {time.monotonic() - started:.0f} s; load average {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
