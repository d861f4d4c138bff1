"""visible(): outside text shows its control characters instead of obeying them."""

from __future__ import annotations

import pytest

from mschat.visible import has_controls, visible

HOSTILE = {
    "csi clear": "\x1b[2J",
    "osc 52 clipboard": "\x1b]52;c;aGVsbG8=\x07",
    "osc 0 title": "\x1b]0;pwned\x07",
    "osc 8 hyperlink": "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "c1 csi": "\x9b2J",
    "bell": "\x07",
    "backspace": "abc\x08\x08x",
    "carriage return": "safe\rEVIL",
    "delete": "\x7f",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_no_control_character_survives(text: str):
    shown = visible(text)
    assert not has_controls(shown)
    assert all(ch in "\n\t" or ord(ch) >= 0x20 for ch in shown)
    assert not any(0x7F <= ord(ch) <= 0x9F for ch in shown)


def test_escape_sequences_become_readable():
    assert visible("\x1b]52;c;aGk=\x07") == "␛]52;c;aGk=␇"
    assert visible("\x9b2J") == "<U+009B>2J"
    assert visible("a\rb") == "a␍b"


def test_text_layout_is_kept():
    assert visible("line 1\r\nline 2\n\tindented") == "line 1\nline 2\n\tindented"
    assert visible("ünïcödé 😀 — ok") == "ünïcödé 😀 — ok"
    assert visible("") == ""


def test_one_line_fields_show_their_newlines():
    assert visible("title\nsecond", newlines=False) == "title␤second"


def test_lone_surrogates_become_replacement_characters():
    shown = visible("half \ud83d emoji")
    assert shown == "half \ufffd emoji"
    shown.encode("utf-8")
