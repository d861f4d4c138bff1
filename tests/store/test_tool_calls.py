"""Tool calls stored with their reply, and per-user tool grants, on both backends."""

from __future__ import annotations

from mschat.store import open_store
from tests.conftest import MakeDatabase


def test_tool_calls_are_kept_with_their_reply_and_go_with_it(db_url: str):
    store = open_store(db_url)
    me = store.create_user(kind="local", external_id="me", name="me", status="active")
    session = store.create_session(creator_id=me.id, title="t", origin="terminal")
    question, reply = store.add_question(session.id, me.id, "q", model="p/m", lease_until=None)
    other = store.add_reply(session.id, "p/m", None)
    values = {
        "server": "fs",
        "arguments": '{"path": "\\u001b[2J"}',
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:00:01+00:00",
    }
    store.add_tool_call(
        message_id=reply.id, call_id="a", tool="read", result="\x1b]0;x\x07", status="ok", **values
    )
    store.add_tool_call(
        message_id=other.id, call_id="b", tool="list", result="", status="denied", **values
    )
    store.add_tool_call(
        message_id=reply.id, call_id="c", tool="list", result="late", status="timeout", **values
    )

    calls = store.tool_calls([reply.id])
    assert [(c.call_id, c.tool, c.status) for c in calls] == [
        ("a", "read", "ok"),
        ("c", "list", "timeout"),
    ]
    assert calls[0].result == "\x1b]0;x\x07" and calls[0].arguments == values["arguments"]
    assert [c.call_id for c in store.tool_calls([reply.id, other.id])] == ["a", "b", "c"]
    assert store.tool_calls([]) == []

    store.delete_session(session.id)
    assert store.tool_calls([reply.id, other.id]) == []
    assert question.id < reply.id
    store.close()


def test_grants_are_granted_once_revoked_and_per_user(db_url: str):
    store = open_store(db_url)
    alice = store.create_user(kind="discord", external_id="1", name="alice", status="active")
    bob = store.create_user(kind="api", external_id="2", name="bob", status="active")
    assert store.tool_grants(alice.id) == []
    assert store.change_tool_grants(alice.id, add=["fs/read", "fs/read", "web/*"]) == [
        "fs/read",
        "web/*",
    ]
    assert store.change_tool_grants(alice.id, add=["fs/list"], remove=["web/*"]) == [
        "fs/list",
        "fs/read",
    ]
    assert store.tool_grants(bob.id) == []
    assert store.change_tool_grants(bob.id, remove=["fs/read"]) == []
    store.close()


def test_a_copy_keeps_tool_calls_and_grants(make_database: MakeDatabase):
    from mschat.store.copy import copy_history

    for source_backend, dest_backend in (("sqlite", "postgresql"), ("postgresql", "sqlite")):
        source = open_store(make_database(source_backend, "src", migrated=True))
        dest = open_store(make_database(dest_backend, "dst", migrated=True))
        me = source.create_user(kind="discord", external_id="1", name="m", status="active")
        session = source.create_session(creator_id=me.id, title="t", origin="discord")
        _, reply = source.add_question(session.id, me.id, "q", model="p/m", lease_until=None)
        source.add_tool_call(
            message_id=reply.id,
            call_id="a",
            server="fs",
            tool="read",
            arguments="{}",
            result="r",
            status="ok",
            started="2026-01-01T00:00:00+00:00",
            finished="2026-01-01T00:00:01+00:00",
        )
        source.change_tool_grants(me.id, add=["fs/read"])
        report = copy_history(source, dest)
        assert report.verified
        assert dest.tool_calls([reply.id]) == source.tool_calls([reply.id])
        assert dest.tool_grants(me.id) == ["fs/read"]
        source.close()
        dest.close()
