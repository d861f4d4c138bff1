"""Benchmark the local provider: mschat vs llama.cpp directly, and a cold ``mschat ask``.

Run by hand from the repository root (needs the ``local`` extra)::

    .venv/bin/python bench/local.py            # 12 warm pairs, 3 cold runs
    .venv/bin/python bench/local.py --pairs 12 --max-tokens 200

Warm: the bundled model is loaded once per side, then the same prompt is run
N times through mschat's core (``SessionManager.ask``: store writes, worker
thread, event loop, all included) and through
``llama_cpp.Llama.create_chat_completion(stream=True)`` on its own instance
with the same settings, alternating which goes first. Budget: mschat ≥ 0.9×
direct tokens/s.

Cold: ``mschat ask`` in a fresh process and a fresh MSCHAT_HOME (import,
config, database creation, model load, generation), with peak RSS from
``getrusage(RUSAGE_CHILDREN)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPT = "Write a short story about a robot who learns to paint."


@dataclass
class Run:
    """One timed generation."""

    ttft: float  # seconds to the first text
    last: float  # seconds to the last text (what a user sees)
    total: float  # seconds to the end (mschat: reply stored as complete)
    tokens: int
    text: str
    cpu: float = 0.0  # CPU seconds of the whole process (every thread) during the run

    @property
    def rate(self) -> float:
        """Completion tokens per second, from the request to the last token."""
        return self.tokens / self.last

    @property
    def cpu_per_token(self) -> float:
        """Process CPU milliseconds per completion token (insensitive to other load)."""
        return self.cpu * 1000 / self.tokens

    @property
    def decode_rate(self) -> float:
        """Tokens per second after the first one (generation speed alone)."""
        return (self.tokens - 1) / max(self.last - self.ttft, 1e-9)


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a fresh machine: no provider settings, state in ``home``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MSCHAT_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env["MSCHAT_HOME"] = str(home)
    return env


async def mschat_run(manager: object, user: object, max_tokens: int) -> Run:
    """One ask through the core; tokens as reported by the provider."""
    from mschat.core.events import Completed, Failed, TextDelta, UsageReported

    parts: list[str] = []
    tokens = 0
    first = None
    last = 0.0
    cpu = time.process_time()
    start = time.perf_counter()
    async for event in manager.ask(  # type: ignore[attr-defined]
        user, PROMPT, new_session=True, temperature=0, max_tokens=max_tokens
    ):
        if isinstance(event, TextDelta):
            last = time.perf_counter()
            if first is None:
                first = last
            parts.append(event.text)
        elif isinstance(event, UsageReported):
            tokens = event.usage.completion_tokens or 0
        elif isinstance(event, Failed):
            raise SystemExit(f"mschat failed: {event.error}")
        elif isinstance(event, Completed):
            break
    end = time.perf_counter()
    assert first is not None
    return Run(
        first - start, last - start, end - start, tokens, "".join(parts), time.process_time() - cpu
    )


def direct_run(llm: object, max_tokens: int, tokens: int) -> Run:
    """One streamed chat completion straight from llama_cpp.

    The stream carries no usage, so the token count is mschat's for the same
    (greedy, hence identical) text; the texts are compared to make sure.
    """
    parts: list[str] = []
    first = None
    last = 0.0
    cpu = time.process_time()
    start = time.perf_counter()
    for chunk in llm.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        temperature=0,
        max_tokens=max_tokens,
        seed=42,
    ):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            last = time.perf_counter()
            if first is None:
                first = last
            parts.append(text)
    end = time.perf_counter()
    assert first is not None
    return Run(
        first - start, last - start, end - start, tokens, "".join(parts), time.process_time() - cpu
    )


async def warm(scratch: Path, pairs: int, max_tokens: int) -> None:
    """Paired warm runs: mschat core vs llama_cpp directly."""
    import llama_cpp

    from mschat.config import load_config
    from mschat.core.services import build_services
    from mschat.providers.local import LocalProvider

    home = Path(tempfile.mkdtemp(prefix="warm-", dir=scratch))
    services = build_services(load_config(clean_env(home)))
    registry = services.registry
    if not registry.using_bundled:
        raise SystemExit("the bundled model is not the default: is the 'local' extra installed?")
    provider = registry.provider("local")
    assert isinstance(provider, LocalProvider)
    started = time.perf_counter()
    provider.load()
    load_time = time.perf_counter() - started
    direct = llama_cpp.Llama(
        model_path=str(provider.model_path()),
        n_ctx=provider.context_window,
        n_threads=provider.n_threads,
        verbose=False,
    )
    manager = services.manager
    user = await manager.local_user()
    print(
        f"model {registry.resolve(None).full_name}: {provider.model_path().name}, "
        f"n_ctx {provider.context_window}, threads {direct.context_params.n_threads}, "
        f"load {load_time * 1000:.0f} ms"
    )
    print(f"prompt {PROMPT!r}, temperature 0, max_tokens {max_tokens}, {pairs} pairs\n")

    # warm-up: page the weights in and fill both prompt caches
    reference = await mschat_run(manager, user, max_tokens)
    direct_run(direct, max_tokens, reference.tokens)

    ours: list[Run] = []
    theirs: list[Run] = []
    for index in range(pairs):
        if index % 2 == 0:
            ours.append(await mschat_run(manager, user, max_tokens))
            theirs.append(direct_run(direct, max_tokens, ours[-1].tokens))
        else:
            theirs.append(direct_run(direct, max_tokens, reference.tokens))
            ours.append(await mschat_run(manager, user, max_tokens))
    same = all(run.text == reference.text for run in ours + theirs)
    await services.aclose()
    direct.close()

    def median(runs: list[Run], attr: str) -> float:
        return statistics.median(getattr(run, attr) for run in runs)

    print(f"{'':33}{'mschat':>10}{'direct':>10}{'ratio':>8}")
    for label, attr, scale, unit in [
        ("tokens/s (request to last token)", "rate", 1, ""),
        ("tokens/s (decode only)", "decode_rate", 1, ""),
        ("time to first token, ms", "ttft", 1000, ""),
        ("time to last token, ms", "last", 1000, ""),
        ("time to stored reply, ms", "total", 1000, ""),
        ("CPU ms per token, all threads", "cpu_per_token", 1, ""),
    ]:
        a, b = median(ours, attr) * scale, median(theirs, attr) * scale
        print(f"{label:33}{a:>10.1f}{b:>10.1f}{a / b:>8.3f}{unit}")
    ratio = median(ours, "rate") / median(theirs, "rate")
    paired = statistics.median(a.rate / b.rate for a, b in zip(ours, theirs, strict=True))
    print(f"\nmedian of per-pair tokens/s ratios: {paired:.3f}")
    verdict = "OK" if ratio >= 0.9 else "OVER BUDGET"
    print(f"completion tokens per run: {reference.tokens}; identical text on both sides: {same}")
    print(f"budget mschat >= 0.9x direct tokens/s: {ratio:.3f}x {verdict}")


def cold(scratch: Path, runs: int, max_tokens: int) -> None:
    """Wall time and peak memory of ``mschat ask`` in a fresh process."""
    script = Path(sys.executable).parent / "mschat"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "mschat"]
    print(f'\ncold `mschat ask --max-tokens {max_tokens} "Say hello"` (fresh MSCHAT_HOME):')
    walls = []
    for _ in range(runs):
        home = Path(tempfile.mkdtemp(prefix="cold-", dir=scratch))
        start = time.perf_counter()
        result = subprocess.run(
            [*command, "ask", "--max-tokens", str(max_tokens), "Say hello"],
            env=clean_env(home),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        walls.append(time.perf_counter() - start)
        if result.returncode != 0 or not result.stdout.strip():
            raise SystemExit(f"mschat ask failed ({result.returncode}): {result.stderr}")
    peak_ask = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    walls_ms = ", ".join(f"{w * 1000:.0f}" for w in walls)
    print(f"  wall time: median {statistics.median(walls) * 1000:.0f} ms ({walls_ms})")
    print(f"  peak RSS of mschat ask (ru_maxrss of children): {peak_ask:.0f} MB")

    home = Path(tempfile.mkdtemp(prefix="cold-", dir=scratch))
    start = time.perf_counter()
    subprocess.run([*command, "models"], env=clean_env(home), capture_output=True, check=True)
    elapsed = (time.perf_counter() - start) * 1000
    print(f"  for scale, `mschat models` (no model load): {elapsed:.0f} ms\n")


def main() -> None:
    """Parse arguments, run both parts, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=12, help="warm mschat/direct pairs")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per warm run")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold mschat ask runs")
    parser.add_argument("--cold-max-tokens", type=int, default=32, help="tokens per cold run")
    args = parser.parse_args()
    # cold first: children forked from a process holding two models would report
    # the parent's pages in their ru_maxrss
    with tempfile.TemporaryDirectory(prefix="mschat-bench-") as scratch:
        cold(Path(scratch), args.cold_runs, args.cold_max_tokens)
        asyncio.run(warm(Path(scratch), args.pairs, args.max_tokens))


if __name__ == "__main__":
    main()
