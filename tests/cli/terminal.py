"""Run the real ``mschat`` command on a pseudo-terminal and collect what the terminal got."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

#: sequences a hostile text may carry, as the terminal would receive them
CLEAR_SCREEN = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;aGk=\x07"
WINDOW_TITLE = "\x1b]0;pwned\x07"
HYPERLINK = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
C1_CSI = "\x9b31m"
BELL = "\x07"
HOSTILE = f"A{CLEAR_SCREEN}B{CLIPBOARD}C{WINDOW_TITLE}D{HYPERLINK}E{C1_CSI}F{BELL}G"


def assert_harmless(received: bytes) -> None:
    """No OSC, C1 control, bell or screen clear in what a terminal received."""
    text = received.decode("utf-8", "replace")
    assert "\x1b]" not in text, received
    assert not any("\x80" <= char <= "\x9f" for char in text), received
    assert "\x07" not in text, received
    assert "\x1b[2J" not in text, received


def mschat(*args: str | bytes) -> list[str | bytes]:
    """The argv of the real command, run from this interpreter."""
    return [sys.executable, "-m", "mschat", *args]


class Terminal:
    """A process whose stdin, stdout (and stderr unless piped) are a pseudo-terminal."""

    def __init__(
        self,
        args: list[str | bytes],
        env: dict[str, str],
        *,
        pipe_stderr: bool = False,
        rows: int = 24,
        cols: int = 100,
    ) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.process = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE if pipe_stderr else slave,
            env={**env, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)
        self.output = bytearray()
        self.closed = False

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end is closed
            data = b""
        if not data:
            self.closed = True
        self.output += data

    def wait_for(self, condition: Callable[[bytes], bool], timeout: float = 20.0) -> None:
        """Read until ``condition(output)`` holds."""
        deadline = time.monotonic() + timeout
        while not condition(bytes(self.output)):
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"condition not met; the terminal got {bytes(self.output)!r}")
            self._read(0.1)

    def write(self, data: bytes) -> None:
        """Type ``data`` on the terminal."""
        os.write(self.master, data)

    def finish(self, timeout: float = 30.0) -> tuple[int, bytes]:
        """Read until the process ends; its exit code and everything the terminal got."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read(0.1)
        code = self.process.wait(max(0.1, deadline - time.monotonic()))
        os.close(self.master)
        return code, bytes(self.output)

    def stderr(self) -> bytes:
        """What the process wrote on a piped stderr (after ``finish``)."""
        assert self.process.stderr is not None
        return self.process.stderr.read()
