"""Terminal Markdown streaming: finished blocks printed once, code fences kept whole."""

from __future__ import annotations

import io

from mschat.cli.live_markdown import LiveMarkdown, freeze_point


def test_freeze_point_is_after_the_last_blank_line_outside_code():
    assert freeze_point("one paragraph, still open") == 0
    assert freeze_point("first\n\nsecond") == len("first\n\n")
    code = "intro\n\n```python\nx = 1\n\ny = 2\n"
    assert freeze_point(code) == len("intro\n\n")  # the blank line inside the fence is not an end
    closed = code + "```\n\nafter"
    assert freeze_point(closed) == len(code + "```\n\n")
    assert freeze_point("~~~\na\n\nb\n~~~\n\n") == len("~~~\na\n\nb\n~~~\n\n")


def test_each_block_is_printed_once_whatever_the_chunking():
    text = "Alpha paragraph.\n\n```python\nprint(1)\n\nprint(2)\n```\n\nOmega paragraph."
    for size in (1, 3, 17, len(text)):
        out = io.StringIO()
        live = LiveMarkdown(out)
        for start in range(0, len(text), size):
            live.feed(text[start : start + size])
        live.close()
        printed = out.getvalue()
        assert printed.count("Alpha paragraph.") == 1, size
        assert printed.count("print(1)") == 1 and printed.count("print(2)") == 1, size
        assert printed.count("Omega paragraph.") == 1, size
        assert printed.index("Alpha") < printed.index("print(1)") < printed.index("Omega")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_link_is_printed_with_its_address_never_as_a_terminal_hyperlink():
    out = _Terminal()
    live = LiveMarkdown(out)
    live.feed("See [the docs](http://evil.example/x) now.\n\nDone.")
    live.close()
    assert "\x1b]8" not in out.getvalue()
    assert "http://evil.example/x" in out.getvalue()
