"""Run the real ``mschat`` on a pseudo-terminal and collect every byte it writes."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Terminal:
    """A child process on a pty: what it wrote so far, and keys to send it."""

    process: subprocess.Popen[bytes]
    master: int
    output: bytearray = field(default_factory=bytearray)

    def _read(self, deadline: float) -> bool:
        """Read what is there (waiting until ``deadline``); False at end of output."""
        remaining = max(deadline - time.monotonic(), 0)
        ready, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output.extend(chunk)
        return bool(chunk)

    def wait_for(self, condition: Callable[[bytes], bool], timeout: float = 20.0) -> None:
        """Read until the output so far satisfies ``condition``."""
        deadline = time.monotonic() + timeout
        while not condition(bytes(self.output)):
            if time.monotonic() > deadline:
                tail = bytes(self.output[-2000:])
                raise AssertionError(f"timed out on the terminal; last output: {tail!r}")
            if not self._read(deadline):
                raise AssertionError(f"the program ended early: {bytes(self.output[-2000:])!r}")

    def wait_for_text(self, text: str, timeout: float = 20.0) -> None:
        """Read until ``text`` (UTF-8) was written."""
        needle = text.encode("utf-8")
        self.wait_for(lambda out: needle in out, timeout)

    def read_some(self, timeout: float = 0.1) -> None:
        """Read what the program writes within ``timeout`` (keeps its output flowing)."""
        self._read(time.monotonic() + timeout)

    def send(self, data: bytes) -> None:
        """Type bytes (keys) into the terminal."""
        os.write(self.master, data)

    def finish(self, timeout: float = 20.0) -> int:
        """Read everything until the program exits; its return code."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError("the program did not exit")
            if self.process.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                break
        return self.process.wait(timeout=max(deadline - time.monotonic(), 1))

    def close(self) -> None:
        """Kill the child if it still runs; close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self.master)


def start(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    size: tuple[int, int] = (120, 40),
) -> Terminal:
    """Start ``python -m mschat ARGS`` on a new pty of ``size`` (columns, rows)."""
    master, slave = os.openpty()
    columns, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "mschat", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)},
        cwd=cwd,
        start_new_session=True,  # the pty becomes the child's controlling terminal
    )
    os.close(slave)
    return Terminal(process, master)
