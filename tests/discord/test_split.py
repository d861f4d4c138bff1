"""The pure splitter: Discord-sized parts, paragraph/line boundaries, balanced code fences."""

from __future__ import annotations

import pytest

from mschat.discord.split import close_open_fence, open_fence, split_message


def assert_valid(parts: list[str], limit: int) -> None:
    for part in parts:
        assert 0 < len(part) <= limit
        assert part.strip()
        assert open_fence(part) is None, f"unbalanced fence in part: {part[-60:]!r}"


def test_short_text_is_one_part() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("") == []
    assert split_message("  \n ") == []


def test_exact_limit_is_one_part() -> None:
    text = "a" * 2000
    assert split_message(text) == [text]


def test_prefers_paragraph_breaks() -> None:
    para = ("word " * 60).strip()  # 299 chars
    text = "\n\n".join([para] * 10)
    parts = split_message(text, 1000)
    assert_valid(parts, 1000)
    for part in parts:
        assert part.startswith("word") and part.endswith("word")
    assert "\n\n".join(parts) == text


def test_falls_back_to_line_breaks_then_spaces() -> None:
    text = "\n".join(f"line {i} " + "x" * 40 for i in range(100))
    parts = split_message(text, 500)
    assert_valid(parts, 500)
    assert "\n".join(parts) == text
    long_line = "word " * 1000
    parts = split_message(long_line, 300)
    assert_valid(parts, 300)
    assert " ".join(p.strip() for p in parts).split() == long_line.split()


def test_a_line_without_spaces_is_cut_hard() -> None:
    parts = split_message("x" * 4500)
    assert [len(p) for p in parts][:2] == [1999, 1999]
    assert "".join(parts) == "x" * 4500


def test_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"print({i})  # {'c' * 30}" for i in range(120))
    text = "Intro.\n\n```python\n" + code + "\n```\n\nOutro."
    parts = split_message(text, 1000)
    assert len(parts) >= 5
    assert_valid(parts, 1000)
    # every part after the first that starts inside the block reopens it as python
    inside = [p for p in parts[1:] if "print(" in p.split("\n")[1 if p.startswith("```") else 0]]
    assert inside and all(p.startswith("```python\n") for p in inside)
    # nothing lost: the code lines appear once each, in order
    lines = [ln for p in parts for ln in p.split("\n") if ln.startswith("print(")]
    assert lines == code.split("\n")
    assert parts[0].startswith("Intro.") and parts[-1].endswith("Outro.")


def test_tilde_fences_and_longer_backtick_runs() -> None:
    text = "~~~js\n" + "\n".join(f"let a{i} = {i};" for i in range(200)) + "\n~~~"
    parts = split_message(text, 400)
    assert_valid(parts, 400)
    assert all(p.startswith("~~~js") for p in parts)
    nested = "````md\n```python\nx\n```\n" + "y\n" * 600 + "````"
    parts = split_message(nested, 300)
    assert_valid(parts, 300)
    assert all(p.startswith("````md") for p in parts)


def test_close_open_fence() -> None:
    assert close_open_fence("```py\nx = 1") == "```py\nx = 1\n```"
    assert close_open_fence("done\n```\nx\n```") == "done\n```\nx\n```"
    assert close_open_fence("plain") == "plain"


@pytest.mark.parametrize("limit", [200, 500, 2000])
def test_random_markdown_round_trip(limit: int) -> None:
    import random

    rng = random.Random(limit)
    blocks = []
    for _ in range(60):
        if rng.random() < 0.3:
            lang = rng.choice(["", "python", "sh"])
            body = "\n".join("code " * rng.randint(1, 12) for _ in range(rng.randint(1, 15)))
            blocks.append(f"```{lang}\n{body}\n```")
        else:
            blocks.append(" ".join("text" for _ in range(rng.randint(1, 80))))
    text = "\n\n".join(blocks)
    parts = split_message(text, limit)
    assert_valid(parts, limit)
    words = [w for w in text.split() if not w.startswith("```")]
    got = [w for p in parts for w in p.split() if not w.startswith("```")]
    assert got == words
