"""The operations logs: listed newest first by user and time, pruned by age."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mschat.store import Store, open_store

OLD = "2020-01-01T00:00:00.000000+00:00"
MID = "2024-06-01T00:00:00.000000+00:00"
NEW = "2026-01-01T00:00:00.000000+00:00"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


def fill(store: Store) -> tuple[int, int]:
    alice = store.create_user(kind="discord", external_id="1", name="alice", status="new").id
    bob = store.create_user(kind="discord", external_id="2", name="bob", status="new").id
    session = store.create_session(creator_id=alice, title="t", origin="discord")
    reply = store.add_message(session_id=session.id, role="assistant", content="a").id
    for when, user in ((OLD, alice), (MID, bob), (NEW, alice)):
        store.add_interaction(
            user_id=user,
            source="discord",
            kind="component",
            name="x",
            payload={"w": when},
            created=when,
        )
        store.add_api_call(user_id=user, status="ok", started=when, provider="p", model="m")
    store.add_feedback(message_id=reply, user_id=alice, kind="good", created=OLD)
    store.add_feedback(message_id=reply, user_id=bob, kind="other", text="hm", created=NEW)
    return alice, bob


def test_logs_are_listed_newest_first_by_user_and_time(store: Store):
    alice, bob = fill(store)
    rows = store.list_log("interactions")
    assert [r["created"][:4] for r in rows] == ["2026", "2024", "2020"]
    assert rows[0]["user_name"] == "alice" and '"w"' in rows[0]["payload"]
    assert [r["started"][:4] for r in store.list_log("api_calls", user_id=alice)] == [
        "2026",
        "2020",
    ]
    assert [r["user_id"] for r in store.list_log("api_calls", since=MID)] == [alice, bob]
    assert len(store.list_log("interactions", limit=1)) == 1
    assert [(r["kind"], r["text"]) for r in store.list_log("feedback", since=MID)] == [
        ("other", "hm")
    ]
    with pytest.raises(ValueError):
        store.list_log("users")


def test_logs_with_kinds_are_listed_by_kind(store: Store):
    alice, _ = fill(store)
    store.add_interaction(user_id=alice, source="discord", kind="mention", name="qa", created=MID)
    [mention] = store.list_log("interactions", kind="mention")
    assert mention["created"] == MID and mention["user_name"] == "alice"
    assert len(store.list_log("interactions", kind="component", since=MID)) == 2
    assert [r["text"] for r in store.list_log("feedback", kind="other")] == ["hm"]
    assert store.list_log("interactions", kind="nothing") == []
    with pytest.raises(ValueError):
        store.list_log("api_calls", kind="ok")


def test_pruning_deletes_old_interactions_and_api_calls_only(store: Store):
    fill(store)
    assert store.prune_logs(MID) == {"interactions": 1, "api_calls": 1}
    assert [r["created"][:4] for r in store.list_log("interactions")] == ["2026", "2024"]
    assert [r["started"][:4] for r in store.list_log("api_calls")] == ["2026", "2024"]
    assert len(store.list_log("feedback")) == 2  # members' feedback is kept
    assert store.prune_logs(MID) == {"interactions": 0, "api_calls": 0}
