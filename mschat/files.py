"""Private files and directories: mschat's data is readable by its owner only.

Conversations, exports and logs are private whatever the process umask is, so
every directory mschat creates is 0700 and every file 0600.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) as 0700 directories; returns it.

    An existing directory keeps its mode: it may be shared on purpose.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
        # mkdir's mode is filtered by the umask
        os.chmod(directory, DIR_MODE)
    return path


def make_private(path: str | Path) -> None:
    """Set ``path``'s mode to 0600 if it exists and is owned by this user."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        os.chmod(path, FILE_MODE)


def create_private(path: str | Path) -> None:
    """Create ``path`` empty as a 0600 file unless it exists (then keep its mode)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        os.close(fd)


def write_private(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file, atomically (a reader never sees half)."""
    path = Path(path)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "wb") as file:
        file.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)
