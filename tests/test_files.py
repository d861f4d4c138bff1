"""Private files: directories 0700 and files 0600 whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mschat.files import create_private, private_dir, write_private
from mschat.state import State


@pytest.fixture(params=[0o000, 0o022, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_directories_are_private(tmp_path: Path, umask: int):
    target = private_dir(tmp_path / "a" / "b")
    assert mode(target) == 0o700
    assert mode(tmp_path / "a") == 0o700


def test_an_existing_directory_keeps_its_mode(tmp_path: Path, umask: int):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    private_dir(shared)
    assert mode(shared) == 0o755


def test_written_files_are_private_and_complete(tmp_path: Path, umask: int):
    path = tmp_path / "new" / "export.json"
    write_private(path, "x" * 1_000_000)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert path.read_text() == "x" * 1_000_000
    assert [p.name for p in path.parent.iterdir()] == ["export.json"]


def test_created_files_are_private(tmp_path: Path, umask: int):
    path = tmp_path / "db"
    create_private(path)
    assert mode(path) == 0o600 and path.stat().st_size == 0


def test_state_survives_a_broken_file(tmp_path: Path):
    state = State(tmp_path / "state.json")
    assert state.get("missing", 3) == 3
    state.set("theme", "nord")
    assert State(tmp_path / "state.json").get("theme") == "nord"
    assert mode(tmp_path / "state.json") == 0o600
    (tmp_path / "state.json").write_text("{not json")
    assert state.get("theme") is None
    state.set("theme", "gruvbox")
    state.set("gone", None)
    assert state.get("theme") == "gruvbox"
