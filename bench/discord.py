"""Benchmark the Discord bot's Q&A mode: real ``mschat serve-discord`` processes, fake Discord.

N users send plain messages at a fixed rate, spread over ``--channels``
channels; the bot answers through the core and mschat's httpx client against
the fake OpenAI server (its own process, zero delay). The bot runs as one
``serve-discord`` process, or with ``--shards N`` as N processes serving one
shard each over one database (the channels' guilds are spread over the
shards). ``--limits`` switches on the fake's Discord rate limits.

Prints answers/s, p50/p99 latency from MESSAGE_CREATE to the ✍🏻 reaction and
to the first reply message, how many went unanswered, the 429s, and the
bot processes' CPU time per message. ``--profile DIR`` runs them under
cProfile and prints where their time went.

Run from the repository root:

    .venv/bin/python -m bench.discord                 # 50 users, 20 msg/s, 30 s
    .venv/bin/python -m bench.discord --users 500 --rate 100 --duration 30 --channels 20
    .venv/bin/python -m bench.discord --users 500 --rate 100 --duration 30 --channels 20 --shards 2
    .venv/bin/python -m bench.discord --channels 20 --limits      # Discord's limits on
"""

from __future__ import annotations

import os
import sys

# run as a script, bench/ would be first on sys.path and this file would shadow discord.py
_here = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
    sys.path[0] = os.path.dirname(_here)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import pstats  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import unquote  # noqa: E402

from mschat.config import load_config  # noqa: E402
from mschat.core.services import build_services  # noqa: E402
from tests.fakes.fake_discord import FakeDiscord, walk_components  # noqa: E402
from tests.fakes.fake_openai import start_process  # noqa: E402

WRITING, DONE, FAILED = "✍🏻", "👌", "❌"
ROOT = Path(_here).parent


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def answered(fake: FakeDiscord, mid: str) -> bool:
    """Whether the answer to ``mid`` is complete (its last part carries the feedback buttons)."""
    replies = fake.replies_to(mid)
    return bool(replies) and any(
        c.get("custom_id", "").endswith(":fb:good") for c in walk_components(replies[-1])
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Options:
    """What to run."""

    users: int
    rate: float
    duration: float
    edit_interval: float
    channels: int
    shards: int
    limits: bool
    drain: float
    profile: Path | None


async def start_bots(
    opts: Options, fake: FakeDiscord, home: Path, channels: list[int]
) -> list[asyncio.subprocess.Process]:
    """Start the ``serve-discord`` processes and wait until each is connected."""
    base = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MSCHAT_HOME": str(home),
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "MSCHAT_DISCORD_QA_CHANNELS": ",".join(str(c) for c in channels),
        "MSCHAT_DISCORD_EDIT_INTERVAL": str(opts.edit_interval),
    }
    processes = []
    for index in range(max(opts.shards, 1)):
        env = dict(base)
        if opts.shards:
            env["MSCHAT_DISCORD_SHARD_COUNT"] = str(opts.shards)
            env["MSCHAT_DISCORD_SHARD_IDS"] = str(index)
        command = [sys.executable]
        if opts.profile is not None:
            command += ["-m", "bench.profiled", str(opts.profile / f"bot-{index}.prof")]
        else:
            command += ["-m", "mschat"]
        command += ["serve-discord", "--log-level", "error"]
        processes.append(await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT))
        await fake.wait_until(lambda n=index + 1: fake.identified >= n, 60)
    return processes


async def bench(opts: Options) -> None:
    """Run the load and print the figures."""
    home = Path(tempfile.mkdtemp(prefix="mschat-bench-discord-"))
    os.environ["MSCHAT_HOME"] = str(home)
    llm, llm_url = start_process(ROOT, chunk_size=16)
    fake = FakeDiscord(rate_limits=opts.limits, echo=True)
    await fake.start()
    try:
        # the channels' guilds, one per shard, so the shards share the load
        guilds = [
            fake.add_guild(shard=s, shard_count=max(opts.shards, 1), channels=0)
            for s in range(max(opts.shards, 1))
        ]
        channels = []
        for i in range(opts.channels):
            channel = fake.new_id()
            guilds[i % len(guilds)].channels.append((channel, f"qa-{i + 1}"))
            channels.append(channel)
        (home / "config.toml").write_text(
            '[general]\ndefault_model = "openai/fake-model"\n'
            f'[providers.openai]\nbase_url = "{llm_url}"\napi_key = "sk-bench"\n'
            'models = ["fake-model"]\n',
            encoding="utf-8",
        )
        services = build_services(load_config())
        manager = services.manager
        for uid in range(1, opts.users + 1):
            user = await manager.user("discord", str(uid), name=f"bench{uid}")
            await manager.update_user(user, user.id, status="new", attach=True)
        await services.aclose()

        bots = await start_bots(opts, fake, home, channels)
        cpu_before = [cpu_seconds(p.pid) for p in bots]
        total = int(opts.rate * opts.duration)
        sent: dict[str, float] = {}
        started = time.monotonic()
        for i in range(total):
            delay = started + i / opts.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            uid = i % opts.users + 1
            at = time.monotonic()
            message = await fake.send_message(
                uid,
                f"question {i} from user {uid}: what is 2+{i}?",
                channel_id=channels[uid % len(channels)],
            )
            sent[message["id"]] = at
        send_done = time.monotonic()

        pending = set(sent)
        deadline = time.monotonic() + opts.drain
        while pending and time.monotonic() < deadline:
            pending = {
                mid
                for mid in pending
                if not answered(fake, mid) and FAILED not in fake.reactions.get(int(mid), [])
            }
            await asyncio.sleep(0.05)
        ended = time.monotonic()
        cpu = sum(cpu_seconds(p.pid) - before for p, before in zip(bots, cpu_before, strict=True))
        for process in bots:
            process.send_signal(signal.SIGTERM)
        for process in bots:
            await process.wait()
    finally:
        await fake.stop()
        llm.terminate()
        llm.wait()

    report(opts, fake, sent, started, send_done, ended, cpu)
    if opts.profile is not None:
        profile_report(opts.profile)


def report(
    opts: Options,
    fake: FakeDiscord,
    sent: dict[str, float],
    started: float,
    send_done: float,
    ended: float,
    cpu: float,
) -> None:
    """Print the figures of one run."""
    writing: dict[str, float] = {}
    first_reply: dict[str, float] = {}
    for call in fake.calls:
        if call.status == 429:
            continue
        parts = [unquote(p) for p in call.path.strip("/").split("/")]
        if (
            call.method == "PUT"
            and len(parts) >= 6
            and parts[4] == "reactions"
            and parts[5] == WRITING
        ):
            writing.setdefault(parts[3], call.at)
        elif call.method == "POST" and len(parts) == 3 and call.body:
            ref = str((call.body.get("message_reference") or {}).get("message_id"))
            if ref in sent:
                first_reply.setdefault(ref, call.at)
    done = {mid for mid in sent if answered(fake, mid)}
    failed = sum(1 for mid in sent if FAILED in fake.reactions.get(int(mid), []))
    unanswered = len(sent) - len(done) - failed
    to_writing = [(writing[m] - t) * 1000 for m, t in sent.items() if m in writing]
    to_reply = [(first_reply[m] - t) * 1000 for m, t in sent.items() if m in first_reply]
    marks = sum(1 for mid in sent if DONE in fake.reactions.get(int(mid), []))
    processes = f"{opts.shards} shard processes" if opts.shards else "1 process"
    print(
        f"discord Q&A benchmark: {opts.users} users, {opts.rate:g} msg/s for {opts.duration:g} s "
        f"({len(sent)} messages) over {opts.channels} channel(s), {processes}, "
        f"Discord's rate limits {'on' if opts.limits else 'off'}, fake LLM at zero delay, "
        f"edit_interval {opts.edit_interval:g} s"
    )
    print(f"  offered rate     : {len(sent) / (send_done - started):.1f} msg/s")
    print(
        f"  throughput       : {len(done) / (ended - started):.1f} answers/s "
        f"({len(done)} answered in {ended - started:.1f} s)"
    )
    print(f"  failed / unanswered: {failed} / {unanswered}")
    print(
        f"  reactions        : ✍🏻 on {len(writing)}, 👌 on {marks} of {len(sent)}; "
        f"429s: {len(fake.throttled)}; REST calls per message: {len(fake.calls) / len(sent):.2f}; "
        f"gateway echoes per message: {fake.echoed / len(sent):.2f}"
    )
    print(f"  bot CPU          : {cpu:.1f} s, {cpu / max(len(sent), 1) * 1000:.2f} ms per message")
    for name, values in (
        ("MESSAGE_CREATE → ✍🏻", to_writing),
        ("MESSAGE_CREATE → first reply", to_reply),
    ):
        if values:
            print(
                f"  {name:<30}: p50 {percentile(values, 50):7.1f} ms   "
                f"p99 {percentile(values, 99):7.1f} ms   max {max(values):7.1f} ms   "
                f"mean {statistics.fmean(values):7.1f} ms"
            )
    budget = percentile(to_writing, 99) <= 100 and unanswered == 0 and failed == 0
    print(f"  budget (p99 ✍🏻 ≤ 100 ms, none unanswered): {'met' if budget else 'NOT met'}")


def profile_report(directory: Path, lines: int = 25) -> None:
    """Where the bot processes' time went (cumulative, then own time)."""
    files = sorted(str(p) for p in directory.glob("bot-*.prof"))
    if not files:
        print("  (no profile was written)")
        return
    stats = pstats.Stats(*files)
    stats.strip_dirs()
    print(f"\nprofile of the bot process(es) ({len(files)} file(s) in {directory}):")
    stats.sort_stats("tottime").print_stats(lines)


def main() -> None:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--edit-interval", type=float, default=1.0)
    parser.add_argument(
        "--channels", type=int, default=1, help="Q&A channels the load is spread over"
    )
    parser.add_argument(
        "--shards", type=int, default=0, help="run N serve-discord processes, one shard each"
    )
    parser.add_argument("--limits", action="store_true", help="the fake enforces Discord's limits")
    parser.add_argument(
        "--drain", type=float, default=60.0, help="seconds to wait for answers after the load"
    )
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the bots into DIR")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    opts = Options(
        users=args.users,
        rate=args.rate,
        duration=args.duration,
        edit_interval=args.edit_interval,
        channels=max(args.channels, 1),
        shards=max(args.shards, 0),
        limits=args.limits,
        drain=args.drain,
        profile=args.profile,
    )
    asyncio.run(bench(opts))


if __name__ == "__main__":
    main()
