"""Session titles: whole short questions, shortened long ones, empty sessions named."""

from __future__ import annotations

import pytest

from mschat.core.events import Started
from mschat.core.models import Origin
from mschat.core.services import Services
from mschat.core.titles import DEFAULT_TITLE, MAX_TITLE, make_title


async def collect(events):
    return [event async for event in events]


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("Say hello", "Say hello"),
        ("What is SQLite?", "What is SQLite?"),
        ("  Explain   WAL\tmode  ", "Explain WAL mode"),
        ("Summarise\n\nline one\nline two\n", "Summarise"),
        ("\n\n  How do I undo a commit?\nI pushed it already.", "How do I undo a commit?"),
        ("", "Untitled"),
        (" \n\t", "Untitled"),
    ],
)
def test_a_short_question_is_the_title_as_asked(question: str, title: str):
    assert make_title(question) == title


def test_a_long_question_gives_its_first_sentence_when_that_fits():
    question = (
        "How do I rotate the logs of a Python service? It writes to one file that "
        "grows by a gigabyte a day and the disk fills up within a week."
    )
    assert make_title(question) == "How do I rotate the logs of a Python service?"


def test_a_long_sentence_is_cut_between_words():
    question = (
        "Could you compare the write amplification of SQLite in WAL mode with "
        "rollback journals on an SD card"
    )
    title = make_title(question)
    assert title == "Could you compare the write amplification of…"
    assert len(title) <= MAX_TITLE


def test_one_endless_word_is_cut_hard():
    title = make_title("x" * 500)
    assert title == "x" * (MAX_TITLE - 1) + "…"


async def test_an_empty_session_is_named_by_its_first_question(services: Services):
    manager = services.manager
    me = await manager.local_user()
    empty = await manager.create_session(me)  # the TUI's Ctrl+N, the API's POST
    assert empty.title == DEFAULT_TITLE
    events = await collect(manager.ask(me, "Say hello", session_id=empty.id))
    assert isinstance(events[0], Started) and events[0].session.title == "Say hello"
    assert (await manager.get_session(me, empty.id)).title == "Say hello"
    await collect(manager.ask(me, "And goodbye", session_id=empty.id))
    assert (await manager.get_session(me, empty.id)).title == "Say hello"


async def test_a_renamed_session_keeps_its_name(services: Services):
    manager = services.manager
    me = await manager.local_user()
    session = await manager.create_session(me)
    await manager.rename_session(me, session.id, "Groceries")
    events = await collect(manager.ask(me, "Milk or oat milk?", session_id=session.id))
    assert events[0].session.title == "Groceries"
    assert (await manager.get_session(me, session.id)).title == "Groceries"


async def test_a_routed_message_names_the_empty_current_session(services: Services):
    manager = services.manager
    bob = await manager.user("api", "bob")
    session = await manager.create_session(bob, origin=Origin.API)
    bob = await manager.switch_session(bob, session.id)
    events = await collect(manager.chat(bob, "Is it raining in Lisbon?", origin=Origin.API))
    assert events[0].session.id == session.id
    assert (await manager.get_session(bob, session.id)).title == "Is it raining in Lisbon?"
