"""Benchmark the Discord bot's Q&A mode through the fake gateway and the fake LLM.

N users send plain messages at a fixed rate; the real discord.py bot answers
through the core and mschat's httpx client against the fake OpenAI server
(zero delay). Prints throughput and p50/p99 latency from MESSAGE_CREATE to the
✍🏻 reaction and to the first reply message, and how many went unanswered.

Run from the repository root:

    .venv/bin/python -m bench.discord                 # 50 users, 20 msg/s, 30 s
    .venv/bin/python -m bench.discord --duration 10 --rate 40
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
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import unquote  # noqa: E402

from mschat.config import load_config  # noqa: E402
from mschat.core.services import build_services  # noqa: E402
from mschat.discord.bot import configure_endpoints, make_bot, serve  # noqa: E402
from tests.fakes.fake_discord import QA_CHANNEL_ID, FakeDiscord  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI  # noqa: E402

WRITING, DONE, FAILED = "✍🏻", "👌", "❌"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def bench(users: int, rate: float, duration: float, edit_interval: float) -> None:
    """Run the load and print the figures."""
    home = Path(tempfile.mkdtemp(prefix="mschat-bench-discord-"))
    os.environ["MSCHAT_HOME"] = str(home)
    async with FakeOpenAI(delay=0.0, chunk_size=16) as llm, FakeDiscord() as fake:
        (home / "config.toml").write_text(
            '[general]\ndefault_model = "openai/fake-model"\n'
            f'[providers.openai]\nbase_url = "{llm.base_url}"\napi_key = "sk-bench"\n'
            'models = ["fake-model"]\n',
            encoding="utf-8",
        )
        services = build_services(load_config())
        configure_endpoints(fake.api_base, fake.gateway_url)
        bot = make_bot(
            services,
            qa_channels=[QA_CHANNEL_ID],
            edit_interval=edit_interval,
            guild_ready_timeout=0.01,
        )
        stop = asyncio.Event()
        server = asyncio.create_task(serve(bot, fake.token, stop=stop, grace=5.0))
        while not bot.is_ready():
            if server.done():
                server.result()
            await asyncio.sleep(0.01)
        manager = services.manager
        for uid in range(1, users + 1):
            user = await manager.user("discord", str(uid), name=f"bench{uid}")
            await manager.update_user(user, user.id, status="new", attach=True)

        total = int(rate * duration)
        sent: dict[str, float] = {}
        started = time.monotonic()
        for i in range(total):
            due = started + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            uid = i % users + 1
            at = time.monotonic()
            message = await fake.send_message(uid, f"question {i} from user {uid}: what is 2+{i}?")
            sent[message["id"]] = at
        send_done = time.monotonic()

        def finished() -> bool:
            return all(
                DONE in fake.reactions.get(int(mid), [])
                or FAILED in fake.reactions.get(int(mid), [])
                for mid in sent
            )

        try:
            await fake.wait_until(finished, timeout=60)
        except TimeoutError:
            pass
        ended = time.monotonic()
        stop.set()
        await server
        await services.aclose()

    writing: dict[str, float] = {}
    first_reply: dict[str, float] = {}
    for call in fake.calls:
        parts = [unquote(p) for p in call.path.strip("/").split("/")]
        if (
            call.method == "PUT"
            and len(parts) >= 6
            and parts[4] == "reactions"
            and parts[5] == WRITING
        ):
            writing.setdefault(parts[3], call.at)
    for message in fake.bot_messages():
        ref = (message.get("message_reference") or {}).get("message_id")
        if ref in sent and ref not in first_reply:
            call = next(
                c
                for c in fake.calls
                if c.method == "POST"
                and c.body
                and (c.body.get("message_reference") or {}).get("message_id") in (ref, int(ref))
            )
            first_reply[ref] = call.at
    ok = sum(1 for mid in sent if DONE in fake.reactions.get(int(mid), []))
    failed = sum(1 for mid in sent if FAILED in fake.reactions.get(int(mid), []))
    unanswered = len(sent) - ok - failed
    to_writing = [(writing[m] - t) * 1000 for m, t in sent.items() if m in writing]
    to_reply = [(first_reply[m] - t) * 1000 for m, t in sent.items() if m in first_reply]

    print(
        f"discord Q&A benchmark: {users} users, {rate:g} msg/s for {duration:g} s "
        f"({len(sent)} messages), fake LLM at zero delay, edit_interval {edit_interval:g} s"
    )
    print(f"  offered rate     : {len(sent) / (send_done - started):.1f} msg/s")
    print(
        f"  throughput       : {ok / (ended - started):.1f} answers/s "
        f"({ok} answered in {ended - started:.1f} s)"
    )
    print(f"  failed / unanswered: {failed} / {unanswered}")
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


def main() -> None:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--edit-interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(bench(args.users, args.rate, args.duration, args.edit_interval))


if __name__ == "__main__":
    main()
