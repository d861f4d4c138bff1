"""A real ``mschat serve-…`` process for end-to-end tests, and what it logged."""

from __future__ import annotations

import asyncio
import signal
import sys

from tests.conftest import eventually


class MschatProcess:
    """An ``mschat`` process started by a test; its stderr lines as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, env: dict[str, str], *args: str, ready: str) -> MschatProcess:
        """Start ``mschat ARGS`` and wait until it logs ``ready`` (or dies)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mschat",
            *args,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        started = cls(process)
        try:
            await eventually(lambda: ready in started.log or process.returncode is not None, 30)
            assert ready in started.log, started.log
        except BaseException:
            await started.stop()  # never left running by a failed start
            raise
        return started

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        """Everything it logged so far."""
        return "".join(self.lines)

    async def stop(self) -> int:
        """SIGTERM; its exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await asyncio.wait_for(self.reader, 5)
        return self.process.returncode or 0
