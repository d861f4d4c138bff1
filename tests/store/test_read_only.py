"""A read-only database: reading commands work, writing ones fail with one line.

Tests run as root in CI, and root ignores file modes; so the processes here give
up the capabilities that bypass them (the kernel then applies the modes to root
as to anyone), and the store is also tried over a ``mode=ro`` connection.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mschat.core.errors import DatabaseError
from mschat.store.sqlite import SQLiteStore as Store
from tests.conftest import fake_model_config
from tests.fakes.fake_openai import FakeOpenAIThread

pytestmark = pytest.mark.sqlite_only  # files, journal modes, file modes

PR_CAPBSET_DROP = 24
#: the capabilities that let root read, write and chmod any file
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
_libc = ctypes.CDLL(None, use_errno=True)


def _like_a_user() -> None:
    """Run in the child before exec: as root, stop bypassing file modes."""
    if os.geteuid() != 0:
        return
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _populated(path: Path) -> int:
    store = Store.open(path)
    user = store.create_user(kind="local", external_id="tester", name="tester", status="active")
    session = store.create_session(creator_id=user.id, title="kept safe", origin="terminal")
    store.add_message(session_id=session.id, author_id=user.id, role="user", content="hello")
    store.close()
    return session.id


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_a_store_over_a_read_only_connection_reads_and_refuses_writes_in_one_line(
    tmp_path: Path, mode: str
):
    path = tmp_path / "mschat.db"
    session_id = _populated(path)
    sqlite3.connect(path).execute(f"PRAGMA journal_mode = {mode}").connection.close()
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    store = Store(conn)
    assert [s.title for s in store.list_sessions(None)] == ["kept safe"]
    assert [m.content for m in store.messages(session_id)] == ["hello"]
    with pytest.raises(DatabaseError) as error:
        store.create_session(creator_id=1, title="new", origin="terminal")
    assert str(error.value) == f"cannot write database {path}: it is read-only"
    assert [s.title for s in store.list_sessions(None)] == ["kept safe"]  # still usable
    store.close()


def _can_act_like_a_user(probe: Path) -> bool:
    probe.write_text("x")
    probe.chmod(0o400)
    done = subprocess.run(
        [sys.executable, "-c", f"open({str(probe)!r}, 'a')"],
        preexec_fn=_like_a_user,
        capture_output=True,
    )
    return done.returncode != 0 and b"PermissionError" in done.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("read_only", ["file", "directory"])
def test_mschat_on_a_read_only_database(
    tmp_path: Path, mschat_home: Path, fake_thread: FakeOpenAIThread, read_only: str
):
    if not _can_act_like_a_user(tmp_path / "probe"):
        pytest.skip("this process cannot give up root's file-mode override")
    fake_model_config(mschat_home, fake_thread.base_url)
    folder = tmp_path / "data"
    db = folder / "mschat.db"
    env = {**os.environ, "MSCHAT_HOME": str(mschat_home), "MSCHAT_DB": str(db)}

    def mschat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mschat", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            preexec_fn=_like_a_user,
        )

    first = mschat("ask", "Remember this")
    assert first.returncode == 0, first.stderr
    db.chmod(0o444)
    if read_only == "directory":
        folder.chmod(0o555)
    try:
        listed = mschat("sessions", "list")
        assert listed.returncode == 0, listed.stderr
        assert "Remember" in listed.stdout
        found = mschat("sessions", "search", "Remember")
        assert found.returncode == 0, found.stderr
        assert "Echo: Remember this" in found.stdout

        refused = mschat("ask", "Write this")
        assert refused.returncode == 1
        (line,) = refused.stderr.strip().splitlines()  # one line, no traceback
        assert line.endswith(f"cannot write database {db}: it is read-only"), line
        assert refused.stdout == ""
    finally:
        folder.chmod(0o700)
        db.chmod(0o600)
    rows = sqlite3.connect(db).execute("SELECT content FROM messages ORDER BY id").fetchall()
    assert [content for (content,) in rows] == ["Remember this", "Echo: Remember this"]
