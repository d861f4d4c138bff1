"""Full-text search: terms are literal, snippets are bounded, newest first."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mschat.core.models import SearchHit
from mschat.store import Store, open_store

MESSAGES = [
    "I write C++ every day",
    "plan c is fine",
    "a cache and a cat",
    "the write-ahead log (WAL) keeps readers going",
    "un café au lait",
    'she said "foo" twice',
    "NEAR the AND gate, OR NOT",
    "flags: -v and c:d and ^caret and star* and (paren)",
    "write ahead, but not hyphenated",
]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = open_store(db_url)
    user = store.create_user(kind="local", external_id="tester", name="tester", status="active")
    session = store.create_session(creator_id=user.id, title="notes", origin="terminal")
    for text in MESSAGES:
        store.add_message(session_id=session.id, author_id=user.id, role="user", content=text)
    yield store
    store.close()


def marked(hit: SearchHit) -> str:
    """The snippet with its highlighted terms in [brackets]."""
    return "".join(f"[{text}]" if matched else text for text, matched in hit.parts())


def found(store: Store, text: str) -> list[str]:
    return [MESSAGES[hit.message_id - 1] for hit in store.search(text, user_id=1)]


def test_symbols_are_searched_for_literally(store: Store):
    assert found(store, "C++") == ["I write C++ every day"]  # not every message with a "c"
    assert found(store, "c++") == ["I write C++ every day"]
    assert found(store, "write-ahead") == ["the write-ahead log (WAL) keeps readers going"]
    assert found(store, "-v") == found(store, "c:d") == found(store, "^caret") == [MESSAGES[7]]
    assert found(store, "star*") == [MESSAGES[7]]
    assert found(store, "star*x") == []


@pytest.mark.parametrize(
    "text", ['"foo', 'foo"', '"', "NEAR(", "AND", "OR", "NOT", "(", ")", "*", "^", ":", "-", '""']
)
def test_quotes_and_operators_are_not_syntax(store: Store, text: str):
    store.search(text, user_id=1)  # never an FTS5 syntax error


def test_operator_words_are_words(store: Store):
    assert found(store, '"foo') == ['she said "foo" twice']
    assert found(store, "AND") == [MESSAGES[7], "NEAR the AND gate, OR NOT", "a cache and a cat"]
    assert found(store, "NOT OR") == ["NEAR the AND gate, OR NOT"]
    assert found(store, "NEAR(") == ["NEAR the AND gate, OR NOT"]
    assert found(store, "(paren)") == [MESSAGES[7]]
    assert found(store, "++") == []  # no letter or digit: nothing to look up


def test_words_keep_their_matching(store: Store):
    """Plain words: every one must match, accents ignored, the last one as a prefix."""
    assert found(store, "cafe") == ["un café au lait"]
    assert found(store, "write ahead") == [MESSAGES[8], MESSAGES[3]]
    assert found(store, "wri") == [MESSAGES[8], MESSAGES[3], MESSAGES[0]]
    assert found(store, "WAL?") == [MESSAGES[3]]  # sentence punctuation is not part of a term


def test_hits_are_newest_first_and_paged(store: Store):
    ids = [hit.message_id for hit in store.search("a", user_id=1, limit=50)]
    assert ids == sorted(ids, reverse=True) and len(ids) > 3
    assert [hit.message_id for hit in store.search("a", user_id=1, limit=2, offset=1)] == ids[1:3]


def test_snippets_bracket_the_terms(store: Store):
    (hit,) = store.search("C++", user_id=1)
    assert marked(hit) == "I write [C++] every day"
    (hit,) = store.search("cafe", user_id=1)
    assert marked(hit) == "un café au lait"


def test_a_huge_message_gets_a_bounded_snippet_around_its_match(store: Store):
    filler = "lorem ipsum dolor " * 300_000  # 5.4 MB before the match
    store.add_message(
        session_id=1,
        author_id=1,
        role="assistant",
        content=f"{filler}the needle sits here{filler}",
    )
    (hit,) = store.search("needle", user_id=1)
    assert "[needle]" in marked(hit)
    assert marked(hit).startswith("…") and marked(hit).endswith("…")
    assert len(marked(hit)) < 200
    (hit,) = store.search("sits needle", user_id=1)
    assert "[needle] [sits]" in marked(hit)


def test_a_huge_message_full_of_matches_gets_a_bounded_snippet(store: Store):
    """FTS5's snippet() is quadratic in the matches: 2 MB of them took minutes."""
    store.add_message(
        session_id=1, author_id=1, role="assistant", content="lorem needle ipsum " * 100_000
    )
    (hit,) = store.search("needle", user_id=1)
    assert marked(hit).startswith("lorem [needle] ipsum lorem [needle]")
    assert marked(hit).endswith("…") and len(marked(hit)) < 200


def test_a_huge_word_is_cut_too(store: Store):
    """A blob, a URL, a base64 line: one "word" is not shown whole either."""
    blob = "x" * 100_000
    store.add_message(session_id=1, author_id=1, role="user", content=f"data: {blob}")
    store.add_message(session_id=1, author_id=1, role="user", content=f"see needle{blob}")
    (hit,) = store.search("data", user_id=1)
    assert marked(hit).startswith("[data]: xxx") and marked(hit).endswith("x…")
    assert len(marked(hit)) < 200
    (hit,) = store.search("needle", user_id=1)  # the last word matches as a prefix
    assert marked(hit).startswith("see [needlexxx") and len(marked(hit)) < 200


def test_a_match_across_the_pieces_read_is_found(store: Store):
    """Messages are read 64 KiB at a time: a match may straddle two pieces."""
    head = "é " * 10_000 + "a" * 20_000  # multi-byte characters before the match
    pad = " " * (65_536 - 3 - len(head.encode()))
    store.add_message(session_id=1, author_id=1, role="user", content=f"{head}{pad}needle tail")
    (hit,) = store.search("needle", user_id=1)
    assert marked(hit).endswith("[needle] tail")


def test_the_snippet_shows_a_word_not_a_word_inside_another(store: Store):
    content = "concatenate " * 20_000 + "the cat sat"
    store.add_message(session_id=1, author_id=1, role="user", content=content)
    hits = store.search("cat sat", user_id=1)
    assert marked(hits[0]).endswith("concatenate the [cat] [sat]")


@pytest.mark.timeout(60)
def test_sessions_search_cpp_finds_only_cpp(store: Store, mschat_home: Path, db_url: str):
    env = {**os.environ, "MSCHAT_HOME": str(mschat_home), "MSCHAT_DB": db_url}
    store.close()
    done = subprocess.run(
        [sys.executable, "-m", "mschat", "sessions", "search", "C++"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.endswith("I write C++ every day")  # a pipe gets plain text
    quoted = subprocess.run(
        [sys.executable, "-m", "mschat", "sessions", "search", '"foo'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert quoted.returncode == 0, quoted.stderr
    assert quoted.stdout.strip().endswith('she said "foo" twice')


def test_brackets_in_a_message_are_text_and_matches_are_spans(store: Store):
    session = store.list_sessions(None)[0]
    store.add_message(
        session_id=session.id, author_id=1, role="assistant", content="squares = [n * n]"
    )
    (hit,) = store.search("squares", user_id=1)
    assert hit.snippet == "squares = [n * n]"
    assert hit.parts() == [("squares", True), (" = [n * n]", False)]


def test_relevance_puts_the_best_matches_first(store: Store):
    session = store.list_sessions(None)[0]
    once = store.add_message(
        session_id=session.id, author_id=1, role="user", content="a kettle, " + "tea " * 40
    )
    often = store.add_message(
        session_id=session.id, author_id=1, role="user", content="kettle kettle kettle tea"
    )
    newest = store.add_message(
        session_id=session.id, author_id=1, role="user", content="the last kettle"
    )
    assert [h.message_id for h in store.search("kettle", user_id=1)] == [
        newest.id,
        often.id,
        once.id,
    ]
    ranked = [h.message_id for h in store.search("kettle", user_id=1, order="relevance")]
    assert ranked[0] == often.id and set(ranked) == {once.id, often.id, newest.id}


def test_only_what_the_user_may_see_is_found(store: Store):
    other = store.create_user(kind="api", external_id="bob", name="bob", status="active")
    private = store.create_session(creator_id=other.id, title="bob's", origin="api")
    public = store.create_session(creator_id=other.id, title="open", origin="api", public=1)
    store.add_message(session_id=private.id, author_id=other.id, role="user", content="secret x")
    shown = store.add_message(
        session_id=public.id, author_id=other.id, role="user", content="secret y"
    )
    assert [h.message_id for h in store.search("secret", user_id=1)] == [shown.id]
    assert store.search("secret", user_id=1, include_public=False) == []
    assert len(store.search("secret", user_id=None)) == 2  # an admin's view
