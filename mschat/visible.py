"""Make outside text safe for a terminal: control characters shown, never obeyed.

Model replies, other users' names and messages, session titles, provider
errors and imported files may carry escape sequences (``ESC[2J`` clears the
screen, ``ESC]52;c;…`` writes the clipboard, ``ESC]8;;…`` hides a link). Every
front end that writes to a terminal passes outside text through
:func:`visible` first; the stored text is never changed.
"""

from __future__ import annotations

import re

#: C0 controls (but tab and newline), DEL and the C1 range, which terminals obey;
#: lone surrogates too (half an emoji from a JSON escape), which no encoder writes
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\ud800-\udfff]")
#: a newline kept as is; a carriage return alone would let text overwrite its line
_CRLF = re.compile("\r\n")


def _picture(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400 block: ␛ for ESC, ␇ for BEL, ␍ for CR
    if code == 0x7F:
        return "\u2421"  # ␡
    if code >= 0xD800:
        return "\ufffd"
    return f"<U+{code:04X}>"  # C1: no picture exists; ESC-free and unambiguous


def visible(text: str, *, newlines: bool = True) -> str:
    """``text`` with every control character replaced by a visible stand-in.

    Tabs are kept; newlines too unless ``newlines`` is false (one-line fields
    such as names and titles), and CRLF becomes a plain newline.
    """
    if not text:
        return text
    if "\r\n" in text:
        text = _CRLF.sub("\n", text)
    text = _CONTROLS.sub(_picture, text)
    if not newlines and "\n" in text:
        text = text.replace("\n", "\u2424")  # ␤
    return text


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a character :func:`visible` would replace."""
    return bool(_CONTROLS.search(text))
