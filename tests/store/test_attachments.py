"""Files of questions: stored once per content, listed on their message, deleted with
the last message that lists them (both backends)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from mschat.core.models import AttachmentInfo
from mschat.store import Store, open_store
from tests.dbs import sql


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store over the test's database, on each backend."""
    opened = open_store(db_url)
    yield opened
    opened.close()


def _file(name: str, data: bytes, mime: str = "text/plain") -> tuple[AttachmentInfo, bytes]:
    return AttachmentInfo(hashlib.sha256(data).hexdigest(), name, mime, len(data)), data


def _session(store: Store, title: str = "t") -> tuple[int, int]:
    user = store.find_user("local", "me") or store.create_user(
        kind="local", external_id="me", name="me", status="active"
    )
    return user.id, store.create_session(creator_id=user.id, title=title, origin="terminal").id


def _stored(store: Store) -> list[str]:
    return sorted(row[0] for row in sql(store, "SELECT sha256 FROM attachments"))


LEASE = "2099-01-01T00:00:00+00:00"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_a_question_keeps_its_files_in_order_and_their_contents_once(store: Store):
    user_id, session_id = _session(store)
    notes = _file("notes.md", b"# notes\n")
    image = _file("cat.png", PNG, "image/png")
    asked, _ = store.add_question(
        session_id, user_id, "look", model="p/m", lease_until=LEASE, attachments=[notes, image]
    )
    assert asked.attachments == (notes[0], image[0])
    again, _ = store.add_question(  # the same image again: its content is not stored twice
        session_id, user_id, "and again", model="p/m", lease_until=LEASE, attachments=[image]
    )
    read = {m.id: m for m in store.messages(session_id)}
    assert read[asked.id].attachments == (notes[0], image[0])
    assert read[again.id].attachments == (image[0],)
    assert [m.attachments for m in store.messages(session_id) if m.role == "assistant"] == [(), ()]
    assert _stored(store) == sorted([notes[0].sha256, image[0].sha256])
    data = store.attachment_data([image[0].sha256, notes[0].sha256, "0" * 64])
    assert data == {image[0].sha256: PNG, notes[0].sha256: b"# notes\n"}
    assert store.get_message(asked.id).attachments[1].is_image


def test_contents_go_with_the_last_message_that_lists_them(store: Store):
    user_id, first = _session(store, "first")
    _, second = _session(store, "second")
    shared, own = _file("a.txt", b"shared"), _file("b.txt", b"only in the first")
    store.add_question(first, user_id, "q", model="p/m", lease_until=LEASE, attachments=[shared])
    store.add_question(first, user_id, "q", model="p/m", lease_until=LEASE, attachments=[own])
    store.add_question(second, user_id, "q", model="p/m", lease_until=LEASE, attachments=[shared])
    store.delete_session(first)
    assert _stored(store) == [shared[0].sha256]  # the second session still lists it
    later = store.messages(second)[0]
    assert store.delete_messages_from(second, later.id) == 2
    assert _stored(store) == []


def test_a_copied_message_keeps_its_files(store: Store):
    user_id, first = _session(store, "first")
    _, fork = _session(store, "fork")
    notes = _file("notes.md", b"# notes\n")
    asked, _ = store.add_question(
        first, user_id, "q", model="p/m", lease_until=LEASE, attachments=[notes]
    )
    # a fork or an import copies rows as dicts: files given as infos, dicts or JSON text
    as_dict = {"sha256": notes[0].sha256, "name": "notes.md", "mime": "text/plain", "size": 8}
    rows = [
        {"role": "user", "content": "q", "status": "complete", "attachments": asked.attachments},
        {"role": "user", "content": "q2", "status": "complete", "attachments": [as_dict]},
    ]
    assert store.insert_messages(fork, rows) == 2
    assert [m.attachments for m in store.messages(fork)] == [(notes[0],), (notes[0],)]
    store.delete_user_sessions(user_id)
    assert _stored(store) == []


def test_the_files_of_a_user_whose_sessions_go_are_deleted(store: Store):
    user_id, session_id = _session(store)
    image = _file("cat.png", PNG, "image/png")
    store.add_question(
        session_id, user_id, "q", model="p/m", lease_until=LEASE, attachments=[image]
    )
    assert store.delete_user_sessions(user_id) == 1
    assert _stored(store) == []
