"""Which kind of file this is, told from its first bytes, and its conversations."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

from mschat.core.errors import InvalidInput
from mschat.core.importers import chatgpt, llm_logs, mschat_export
from mschat.core.importers.base import ImportedSession, Sessions, not_importable

SQLITE_MAGIC = b"SQLite format 3\x00"
ZIP_MAGIC = b"PK\x03\x04"
#: how far into a file its first JSON character is looked for
HEAD = 4096


def open_file(path: Path, name: str | None = None) -> Sessions:
    """The conversations in ``path``, read one at a time; refuses a file of no known kind.

    The kind is told at once (the first call raises for an unknown file); the
    returned iterator holds the file open until it is exhausted or closed.
    """
    name = name or str(path)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        head = stream.read(HEAD)
        if head.startswith(SQLITE_MAGIC):
            stream.close()
            return _started(llm_logs.read(name, path))
        if head.startswith(ZIP_MAGIC):
            stream.close()
            return _started(_from_zip(name, path))
        first = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1]
        stream.seek(0)
        if first == b"{":
            return _started(_closing(stream, mschat_export.read(name, stream)))
        if first == b"[":
            return _started(_closing(stream, chatgpt.read(name, stream)))
    except BaseException:
        stream.close()
        raise
    stream.close()
    raise not_importable(name)


def _started(items: Sessions) -> Sessions:
    """``items`` with its first one read now, so an unreadable file fails here."""
    try:
        first = next(items)
    except StopIteration:
        return _chain(None, items)
    except BaseException:
        items.close()
        raise
    return _chain(first, items)


def _chain(first: ImportedSession | None, rest: Sessions) -> Sessions:
    try:
        if first is not None:
            yield first
        yield from rest
    finally:
        rest.close()


def _closing(stream: IO[bytes], items: Sessions) -> Sessions:
    try:
        yield from items
    finally:
        stream.close()


def _from_zip(name: str, path: Path) -> Sessions:
    """The conversations files of a ChatGPT export zip (``conversations.json`` or parts)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise not_importable(name) from None
    with archive:
        members = sorted(
            info.filename
            for info in archive.infolist()
            if Path(info.filename).name == "conversations.json"
            or (
                Path(info.filename).name.startswith("conversations-")
                and info.filename.endswith(".json")
            )
        )
        if not members:
            raise not_importable(name)
        for member in members:
            try:
                with archive.open(member) as stream:
                    yield from chatgpt.read(f"{name}:{member}", stream)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InvalidInput(f"{name}: cannot read {member} ({exc})") from None
