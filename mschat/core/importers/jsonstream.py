"""The items of a JSON array read one at a time, so a huge file needs little memory."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import IO, Any

#: bytes read at a time; doubled while one item is larger than the buffer
CHUNK = 1 << 20
#: the largest item read (characters): a hostile file cannot make the reader hold more
MAX_ITEM = 64 << 20
_WHITESPACE = " \t\n\r"


class JSONStreamError(ValueError):
    """The stream is not a well-formed JSON array; ``index`` is the item at fault."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def iter_array(stream: IO[bytes], chunk: int = CHUNK, max_item: int = MAX_ITEM) -> Iterator[Any]:
    """Yield each item of the UTF-8 JSON array in ``stream``, decoding one at a time."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    parser = json.JSONDecoder()
    buffer = ""
    pos = 0
    eof = False
    size = chunk

    def fill(index: int) -> bool:
        nonlocal buffer, pos, eof
        if eof:
            return False
        data = stream.read(size)
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise JSONStreamError(f"not UTF-8 text ({exc.reason})", index) from None
        eof = not data
        buffer = buffer[pos:] + text
        pos = 0
        return bool(data)

    def next_char(index: int) -> str:
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                pos += 1
            if pos < len(buffer):
                return buffer[pos]
            if not fill(index):
                return ""

    if next_char(0) != "[":
        raise JSONStreamError("not a JSON array", 0)
    pos += 1
    index = 0
    if next_char(0) == "]":
        pos += 1
    else:
        while True:
            while True:
                error = None
                try:
                    item, end = parser.raw_decode(buffer, pos)
                except json.JSONDecodeError as exc:
                    error = f"invalid JSON ({exc.msg})"
                else:
                    # a number may go on in the next chunk; anything else has ended
                    if end < len(buffer) or eof or not isinstance(item, int | float):
                        break
                # maybe only cut off by the end of the buffer: read more and retry
                if len(buffer) - pos > max_item:
                    raise JSONStreamError(f"an item is larger than {max_item >> 20} MB", index)
                if not fill(index):
                    if error is None:
                        break
                    raise JSONStreamError(error, index)
                size *= 2
            pos = end
            size = chunk
            yield item
            index += 1
            separator = next_char(index)
            pos += 1
            if separator == "]":
                break
            if separator != ",":
                raise JSONStreamError("invalid JSON (expected , or ] after an item)", index)
            next_char(index)
    if next_char(index):
        raise JSONStreamError("invalid JSON (text after the array)", index)
