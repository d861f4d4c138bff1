"""A throwaway PostgreSQL cluster from the machine's binaries, for the tests.

``initdb`` refuses to run as root, and the tests run as root in CI: the cluster
is then made and run by an unprivileged user (``postgres`` from the Debian
package, else ``nobody``) in a data directory that user owns. It listens on
127.0.0.1 and a free port only, trusts every local connection, and (unless
made ``durable``, as the benchmarks do) trades durability for speed. ``stop()`` removes it all.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"


def find_binaries() -> Path | None:
    """The directory of ``pg_ctl`` and ``initdb``: on PATH, else Debian's newest."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One PostgreSQL server in a temporary directory."""

    def __init__(self, binaries: Path, *, durable: bool = False) -> None:
        self.binaries = binaries
        #: False (tests): no fsync, no waiting for the WAL at commit
        self.durable = durable
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mschat-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.running = False

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.binaries / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=self.root, check=False
        )

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        self.start_server()

    def start_server(self) -> None:
        """Start the server of the existing cluster; return once it accepts connections."""
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=200",
            ]
            + ([] if self.durable else ["-c fsync=off -c synchronous_commit=off"])
        )
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )
        if done.returncode:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stdout.strip()} {log.strip()}")
        self.running = True

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (``fast``: clients are disconnected at once)."""
        done = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        if done.returncode:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip() or done.stdout.strip()}")
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop the server and start it again; return once it accepts connections."""
        self.stop_server(mode)
        self.start_server()

    def url(self, dbname: str = "postgres") -> str:
        """The URL of a database of this cluster, as the superuser."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str) -> None:
        """Run one statement as the superuser in the ``postgres`` database (autocommit)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("no unprivileged user (postgres or nobody) to run PostgreSQL as")
