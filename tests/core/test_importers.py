"""A new user brings their history: mschat exports, ChatGPT exports, llm logs.db."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mschat.core.errors import DatabaseError, InvalidInput, PermissionDenied
from mschat.core.importers.jsonstream import JSONStreamError, iter_array
from mschat.core.models import Message, MessageStatus, Session, User
from mschat.core.services import Services

FIXTURES = Path(__file__).parent / "fixtures"
CHATGPT = FIXTURES / "chatgpt_conversations.json"


def refusal(path: Path) -> str:
    return f"{path} is not an mschat export, a ChatGPT conversations.json or an llm logs.db"


async def contents(services: Services, user: User, session: Session) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in await services.manager.messages(user, session.id)]


async def all_messages(services: Services, user: User, session: Session) -> list[Message]:
    return await services.manager.messages(user, session.id)


async def session_count(services: Services) -> int:
    return services.store.table_counts()["sessions"]


def iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


# ---- ChatGPT conversations.json ------------------------------------------------


async def test_chatgpt_export_imports_the_branch_that_was_shown(services: Services):
    manager = services.manager
    me = await manager.local_user()
    sessions = await manager.import_file(me, CHATGPT)
    # the fifth conversation has no turn (an abandoned "New chat") and is skipped
    assert len(sessions) == 4
    sourdough, sales, spanish, prime = sessions

    assert sourdough.title == "Sourdough starter help"
    assert not sourdough.public and sourdough.creator_id == me.id
    assert sourdough.created == iso(1737531842.512331)
    assert sourdough.updated == iso(1737532410.031045)
    assert sourdough.model is None  # the session answers with the user's model from now on
    assert await contents(services, me, sourdough) == [
        ("user", "My sourdough starter smells like nail polish remover. Is it dead?"),
        (
            "assistant",
            "Not dead, just hungry. The acetone smell means the yeast ran out of food. "
            "Discard half and feed it equal weights of flour and water.",
        ),
        # the question was edited: the edited branch is the one shown, not the first one
        ("user", "How often should I feed it if I keep it in the fridge?"),
        (
            "assistant",
            "In the fridge, once a week is plenty. "
            "Take it out the day before you bake and give it two feeds.",
        ),
    ]
    messages = await all_messages(services, me, sourdough)
    assert [m.created for m in messages] == [
        iso(1737531842.907),
        iso(1737531850.118764),
        iso(1737532390.412),
        iso(1737532410.031045),
    ]
    assert [m.model for m in messages] == [None, "gpt-4o", None, "gpt-4o"]
    assert [m.author_id for m in messages] == [me.id, None, me.id, None]
    assert messages[1].finish_reason == "stop"
    assert all(m.status == MessageStatus.COMPLETE for m in messages)

    # an image becomes a mark; the code run and its output are not turns, and the two
    # pieces of the answer around them read as one
    assert await contents(services, me, sales) == [
        (
            "user",
            "[image]\n\nHere is a screenshot of my sales table. Can you plot revenue by month?",
        ),
        (
            "assistant",
            "Let me read the numbers off the screenshot and plot them.\n\n"
            "Here is the chart: revenue grows every month and jumps 36% in March.",
        ),
        ("user", "Thanks! Can you make the bars orange?"),
        ("assistant", "Done: the bars are orange now."),
    ]

    # a voice chat: transcripts kept, hostile characters stored as they came
    assert spanish.title == "Spanish practice \x1b[31mred\x1b[0m"
    voice = await all_messages(services, me, spanish)
    question = "¿Cómo se dice \x1b]52;c;aGVsbG8=\x07 clipboard en español?"
    assert voice[0].content == question + "\n\n[audio]"
    assert voice[1].content == "Se dice «portapapeles». \x9b2J \ufffd\n\n[audio]"
    assert voice[1].status == MessageStatus.INTERRUPTED

    # regenerated answer: the shown one; the model's thoughts are not a turn
    assert prime.title == "Is 2^61 - 1 a prime number?"  # no title: the question
    assert await contents(services, me, prime) == [
        ("user", "Is 2^61 - 1 a prime number?"),
        (
            "assistant",
            "Yes. 2^61 - 1 = 2305843009213693951 is prime: it is the ninth Mersenne prime.",
        ),
    ]
    assert (await all_messages(services, me, prime))[1].model == "o1"


async def test_imported_sessions_are_private_to_the_importer(services: Services):
    manager = services.manager
    me = await manager.local_user()
    bob = await manager.user("api", "bob")
    sessions = await manager.import_file(me, CHATGPT)
    for session in sessions:
        with pytest.raises(PermissionDenied):
            await manager.get_session(bob, session.id)
    assert await manager.list_sessions(bob, include_public=True) == []


async def test_importing_the_same_file_twice_skips_what_is_already_there(
    services: Services, tmp_path: Path
):
    manager = services.manager
    me = await manager.local_user()
    first = await manager.import_file(me, CHATGPT)
    assert await manager.import_file(me, CHATGPT) == []
    assert await session_count(services) == 4

    # another user gets their own copies
    bob = await manager.user("api", "bob")
    assert len(await manager.import_file(bob, CHATGPT)) == 4

    # a removed session comes back, alone
    await manager.remove_session(me, first[1].id)
    again = await manager.import_file(me, CHATGPT)
    assert [s.title for s in again] == ["Plot monthly sales"]

    # a conversation continued since is imported anew, in full
    data = json.loads(CHATGPT.read_text(encoding="utf-8"))
    mapping = data[0]["mapping"]
    leaf = data[0]["current_node"]
    mapping[leaf]["children"] = ["later"]
    mapping["later"] = {
        "id": "later",
        "parent": leaf,
        "children": [],
        "message": {
            "id": "later",
            "author": {"role": "user"},
            "create_time": 1737600000.0,
            "content": {"content_type": "text", "parts": ["And at 30 degrees?"]},
            "metadata": {},
        },
    }
    data[0]["current_node"] = "later"
    newer = tmp_path / "conversations.json"
    newer.write_text(json.dumps(data), encoding="utf-8")
    continued = await manager.import_file(me, newer)
    assert [s.title for s in continued] == ["Sourdough starter help"]
    assert (await contents(services, me, continued[0]))[-1] == ("user", "And at 30 degrees?")


async def test_chatgpt_export_zip_is_read_as_it_comes(services: Services, tmp_path: Path):
    archive = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("user.json", '{"id": "user-x", "email": "sam@example.org"}')
        zf.writestr("chat.html", "<html></html>")
        zf.write(CHATGPT, "conversations.json")
        zf.writestr("message_feedback.json", "[]")
    me = await services.manager.local_user()
    sessions = await services.manager.import_file(me, archive)
    assert [s.title for s in sessions][:2] == ["Sourdough starter help", "Plot monthly sales"]


async def test_a_broken_conversation_stops_the_import_and_keeps_the_ones_before(
    services: Services, tmp_path: Path
):
    data = json.loads(CHATGPT.read_text(encoding="utf-8"))
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([data[0], {"title": "no tree"}, data[1]]), encoding="utf-8")
    me = await services.manager.local_user()
    with pytest.raises(InvalidInput) as info:
        await services.manager.import_file(me, path)
    assert str(info.value) == f"{path}: conversation 2 has no message tree (mapping)"
    sessions = await services.manager.list_sessions(me)
    assert [(s.title, s.message_count) for s in sessions] == [("Sourdough starter help", 4)]

    # a truncated file: the same, naming the conversation that is cut
    path.write_text(json.dumps(data[:2])[:-500], encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"conversation 2: invalid JSON"):
        await services.manager.import_file(me, path)


async def test_each_session_is_stored_in_one_transaction(
    services: Services, monkeypatch: pytest.MonkeyPatch
):
    me = await services.manager.local_user()
    calls = 0
    insert = services.store.insert_messages

    def failing_insert(session_id: int, rows: Any, **options: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DatabaseError("disk I/O error")
        return insert(session_id, rows, **options)

    monkeypatch.setattr(services.store, "insert_messages", failing_insert)
    with pytest.raises(DatabaseError):
        await services.manager.import_file(me, CHATGPT)
    # the first conversation is whole; the second left nothing behind, not even its session
    sessions = await services.manager.list_sessions(me)
    assert [(s.title, s.message_count) for s in sessions] == [("Sourdough starter help", 4)]


# ---- mschat's own JSON export ---------------------------------------------------


async def test_mschat_export_round_trips_and_is_imported_once(services: Services, tmp_path: Path):
    manager = services.manager
    me = await manager.local_user()
    events = [event async for event in manager.ask(me, "Export me \x1b[2J", new_session=True)]
    original = events[0].session
    path = tmp_path / "session.json"
    path.write_text(await manager.export_session(me, original.id, "json"), encoding="utf-8")

    [copy] = await manager.import_file(me, path)
    assert copy.id != original.id and not copy.public
    assert await contents(services, me, copy) == await contents(services, me, original)
    old = await all_messages(services, me, original)
    new = await all_messages(services, me, copy)
    assert [m.created for m in new] == [m.created for m in old]
    assert await manager.import_file(me, path) == []


async def test_hostile_mschat_export_values_are_cleaned_not_crashed_on(
    services: Services, tmp_path: Path
):
    path = tmp_path / "hostile.json"
    path.write_text(
        '{"session": {"title": ["not", "text"], "model": {"x": 1}, "created": "yesterday"},'
        ' "messages": ['
        '{"role": "user", "content": "half an emoji \\ud83d and \\u001b]0;title\\u0007",'
        ' "created": "2024-05-01T10:00:00+02:00", "tokens_in": "many"},'
        '{"role": "assistant", "content": "ok", "model": 42, "latency_ms": -5,'
        ' "status": "streaming", "created": 1e400}]}',
        encoding="utf-8",
    )
    me = await services.manager.local_user()
    [session] = await services.manager.import_file(me, path)
    assert session.title == "half an emoji \ufffd and ]0;title"  # not text: made from the question
    assert session.model is None
    user, reply = await all_messages(services, me, session)
    assert user.content == "half an emoji \ufffd and \x1b]0;title\x07"
    assert user.created == "2024-05-01T08:00:00.000000+00:00" and user.tokens_in is None
    assert (reply.model, reply.latency_ms, reply.status) == (None, None, "interrupted")
    assert reply.created >= user.created


# ---- llm's logs.db ---------------------------------------------------------------


def _llm_database(path: Path) -> Any:
    import sqlite_utils
    from llm.migrations import migrate

    db = sqlite_utils.Database(path)
    db.execute("PRAGMA synchronous = OFF")  # a test file: no fsync per migration
    migrate(db)
    return db


def _legacy_logs(path: Path) -> None:
    """A logs.db as llm up to 0.2x wrote it: conversations and responses."""
    db = _llm_database(path)
    db["conversations"].insert_all(
        [
            {"id": "01hq2t4n7x1c0z5b8v3d6f9g2h", "name": "Capital of Peru", "model": "gpt-4o-mini"},
            {"id": "01hq3a0000000000000000000b", "name": "Haiku about SQLite", "model": "claude-3"},
        ]
    )
    rows = [
        {
            "id": "01hq2t4n8a000000000000000a",
            "model": "gpt-4o-mini",
            "prompt": "What is the capital of Peru?",
            "system": "Answer in one line.",
            "response": "Lima.",
            "conversation_id": "01hq2t4n7x1c0z5b8v3d6f9g2h",
            "duration_ms": 812,
            "datetime_utc": "2024-03-02T09:15:01.250000+00:00",
            "input_tokens": 24,
            "output_tokens": 2,
        },
        {
            "id": "01hq2t4n9b000000000000000b",
            "model": "gpt-4o-mini",
            "resolved_model": "gpt-4o-mini-2024-07-18",
            "prompt": "And its population?",
            "system": "Answer in one line.",
            "response": "About 10 million in the metro area.\x1b[2J",
            "conversation_id": "01hq2t4n7x1c0z5b8v3d6f9g2h",
            "duration_ms": 1033,
            "datetime_utc": "2024-03-02 09:15:40.500000",  # older llm: naive UTC
            "input_tokens": 41,
            "output_tokens": 9,
        },
        {
            "id": "01hq3a0000000000000000000c",
            "model": "claude-3",
            "prompt": "Write it about that file.",
            "system": None,
            "response": "Pages in a B-tree /\nwritten once, read by many /\nthe WAL keeps its word",
            "conversation_id": "01hq3a0000000000000000000b",
            "duration_ms": 2200,
            "datetime_utc": "2024-04-11T18:00:00+00:00",
            "input_tokens": None,
            "output_tokens": None,
        },
    ]
    rows += [
        {
            # the system prompt changed, and no answer was logged
            "id": "01hq2t4nac000000000000000c",
            "model": "gpt-4o-mini",
            "prompt": "And its altitude?",
            "system": "Answer in French.",
            "response": None,
            "conversation_id": "01hq2t4n7x1c0z5b8v3d6f9g2h",
            "datetime_utc": "2024-03-02T09:16:00+00:00",
        },
        {
            # a photo and no text, outside any conversation
            "id": "01hq4b0000000000000000000d",
            "model": "gpt-4o",
            "prompt": None,
            "response": "A cat asleep on a sofa.",
            "conversation_id": None,
            "datetime_utc": "2024-05-05T12:00:00+00:00",
        },
    ]
    db["responses"].insert_all(rows, alter=False)
    db["attachments"].insert({"id": "a1", "type": "image/jpeg", "path": "/tmp/cat.jpg"})
    db["prompt_attachments"].insert(
        {"response_id": "01hq4b0000000000000000000d", "attachment_id": "a1", "order": 0}
    )
    db["fragments"].insert(
        {"id": 1, "hash": "h1", "content": "SQLite is a C library.", "source": "-"}
    )
    db["prompt_fragments"].insert(
        {"response_id": "01hq3a0000000000000000000c", "fragment_id": 1, "order": 0}
    )
    db.conn.commit()
    db.conn.close()


async def test_llm_logs_db_conversations_become_sessions(services: Services, tmp_path: Path):
    path = tmp_path / "logs.db"
    _legacy_logs(path)
    before = path.read_bytes()
    me = await services.manager.local_user()
    photo, peru, haiku = await services.manager.import_file(me, path)
    assert path.read_bytes() == before  # read-only
    assert await contents(services, me, photo) == [
        ("user", "[attachment]"),
        ("assistant", "A cat asleep on a sofa."),
    ]

    assert (peru.title, peru.system_msg) == ("Capital of Peru", "Answer in one line.")
    assert not peru.public
    messages = await all_messages(services, me, peru)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What is the capital of Peru?"),
        ("assistant", "Lima."),
        ("user", "And its population?"),
        ("assistant", "About 10 million in the metro area.\x1b[2J"),
        ("system", "Answer in French."),
        ("user", "And its altitude?"),
    ]
    assert [(m.model, m.tokens_in, m.tokens_out, m.latency_ms) for m in messages[1:4:2]] == [
        ("gpt-4o-mini", 24, 2, 812),
        ("gpt-4o-mini-2024-07-18", 41, 9, 1033),
    ]
    assert [m.created for m in messages[:4]] == [
        "2024-03-02T09:15:01.250000+00:00",
        "2024-03-02T09:15:01.250000+00:00",
        "2024-03-02T09:15:40.500000+00:00",
        "2024-03-02T09:15:40.500000+00:00",
    ]
    assert peru.created == "2024-03-02T09:15:01.250000+00:00"
    assert peru.updated == "2024-03-02T09:16:00.000000+00:00"

    assert haiku.title == "Haiku about SQLite" and haiku.system_msg is None
    assert await contents(services, me, haiku) == [
        ("user", "SQLite is a C library.\nWrite it about that file."),
        ("assistant", "Pages in a B-tree /\nwritten once, read by many /\nthe WAL keeps its word"),
    ]
    reply = (await all_messages(services, me, haiku))[1]
    assert (reply.model, reply.tokens_in, reply.tokens_out) == ("claude-3", None, None)

    assert await services.manager.import_file(me, path) == []


def _chain_logs(path: Path) -> None:
    """A logs.db as llm 0.3x writes it: threads, turns and message chains."""
    from llm.logs import LogStore
    from llm.parts import ToolCallPart, ToolResultPart, assistant, system, tool_message, user

    db = _llm_database(path)
    store = LogStore(db)

    def turn(thread: str, turn_id: str, parent: str | None, tip: str | None, **values: Any):
        db["turns"].insert(
            {
                "id": turn_id,
                "thread_id": thread,
                "parent_message_hash": parent,
                "tip_message_hash": tip,
                **values,
            }
        )
        db["threads"].update(thread, {"tip_message_hash": tip})

    book = "Chapter 1. It was a dark and stormy night."
    thread = store.create_thread(name="Summaries", id="01jthread00000000000000000a")
    asked = store.ensure_chain(
        [system("You are terse."), user(f"{book}\nSummarise this.")], fragments=[book]
    )
    answered = store.ensure_chain([assistant("A storm.")], parent=asked)
    turn(
        thread,
        "01jturn000000000000000001",
        asked,
        answered,
        model="gpt-5-mini",
        resolved_model="gpt-5-mini-2025-08-07",
        input_tokens=30,
        output_tokens=3,
        duration_ms=640,
        datetime_utc="2025-09-01T08:00:00.000000+00:00",
    )
    # a second question answered with a tool call in between
    asked2 = store.ensure_chain([user("What time is it?")], parent=answered)
    called = store.ensure_chain(
        [assistant("Let me look.", ToolCallPart(name="now", arguments={}, tool_call_id="c1"))],
        parent=asked2,
    )
    turn(
        thread,
        "01jturn000000000000000002",
        asked2,
        called,
        model="gpt-5-mini",
        input_tokens=50,
        output_tokens=7,
        duration_ms=300,
        datetime_utc="2025-09-01T08:01:00+00:00",
    )
    result = store.ensure_chain(
        [tool_message(ToolResultPart(name="now", output="08:01", tool_call_id="c1"))],
        parent=called,
    )
    final = store.ensure_chain([assistant("It is 08:01.")], parent=result)
    turn(
        thread,
        "01jturn000000000000000003",
        result,
        final,
        model="gpt-5-mini",
        input_tokens=60,
        output_tokens=5,
        duration_ms=200,
        datetime_utc="2025-09-01T08:01:02+00:00",
    )
    db.conn.commit()
    db.conn.close()


async def test_llm_logs_db_threads_of_newer_llm_become_sessions(services: Services, tmp_path: Path):
    path = tmp_path / "logs.db"
    _chain_logs(path)
    me = await services.manager.local_user()
    [session] = await services.manager.import_file(me, path)
    assert (session.title, session.system_msg) == ("Summaries", "You are terse.")
    messages = await all_messages(services, me, session)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Chapter 1. It was a dark and stormy night.\nSummarise this."),
        ("assistant", "A storm."),
        ("user", "What time is it?"),
        ("assistant", "Let me look.\n\nIt is 08:01."),
    ]
    assert [(m.model, m.tokens_in, m.tokens_out, m.latency_ms) for m in messages[1::2]] == [
        ("gpt-5-mini-2025-08-07", 30, 3, 640),
        ("gpt-5-mini", 110, 12, 500),
    ]
    assert [m.created for m in messages] == [
        "2025-09-01T08:00:00.000000+00:00",
        "2025-09-01T08:00:00.000000+00:00",
        "2025-09-01T08:01:00.000000+00:00",
        "2025-09-01T08:01:00.000000+00:00",
    ]
    assert await services.manager.import_file(me, path) == []


async def test_llm_conversation_logged_both_ways_is_read_once_from_its_thread(
    services: Services, tmp_path: Path
):
    path = tmp_path / "logs.db"
    _chain_logs(path)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO conversations (id, name, model) VALUES (?, 'Summaries', 'gpt-5-mini')",
        ["01jthread00000000000000000a"],
    )
    conn.execute(
        "INSERT INTO responses (id, model, prompt, response, conversation_id, datetime_utc) "
        "VALUES ('01jturn000000000000000001', 'gpt-5-mini', 'Summarise this.', 'A storm.', "
        "'01jthread00000000000000000a', '2025-09-01T08:00:00+00:00')"
    )
    conn.commit()
    conn.close()
    me = await services.manager.local_user()
    [session] = await services.manager.import_file(me, path)
    assert session.message_count == 4


async def test_llm_text_that_is_not_utf8_is_kept_with_replacement_characters(
    services: Services, tmp_path: Path
):
    path = tmp_path / "logs.db"
    _legacy_logs(path)
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE responses SET response = CAST(x'4c696d61ff2e' AS TEXT) "
        "WHERE id = '01hq2t4n8a000000000000000a'"
    )
    conn.commit()
    conn.close()
    me = await services.manager.local_user()
    _, peru, _ = await services.manager.import_file(me, path)
    assert (await contents(services, me, peru))[1] == ("assistant", "Lima\ufffd.")


# ---- files that are none of these ------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   \n", id="blank"),
        pytest.param(b'{"name": "a package.json", "version": "1.0"}', id="json-object"),
        pytest.param(b'[{"role": "user", "content": "hi"}]', id="json-list-of-messages"),
        pytest.param(b"[1, 2, 3]", id="json-numbers"),
        pytest.param(b'{"session": {}, "messages": [', id="truncated-export"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + os.urandom(4096), id="binary"),
        pytest.param(b"# Notes\n\nnot JSON at all", id="markdown"),
        pytest.param(b"SQLite format 3\x00" + b"\xff" * 4096, id="corrupt-sqlite"),
        pytest.param(b"PK\x03\x04 not really a zip", id="corrupt-zip"),
        pytest.param(b'["\xff\xfe"]', id="json-not-utf8"),
    ],
)
async def test_files_of_no_known_kind_are_refused_in_one_line(
    services: Services, tmp_path: Path, content: bytes
):
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    me = await services.manager.local_user()
    with pytest.raises(InvalidInput) as info:
        await services.manager.import_file(me, path)
    assert str(info.value) == refusal(path)
    assert await session_count(services) == 0


@pytest.mark.sqlite_only
async def test_another_sqlite_database_is_refused(services: Services, tmp_path: Path):
    me = await services.manager.local_user()
    # mschat's own database is not an llm log
    mschat_db = Path(services.store.path)
    with pytest.raises(InvalidInput) as info:
        await services.manager.import_file(me, mschat_db)
    assert str(info.value) == refusal(mschat_db)
    other = tmp_path / "app.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE responses (id INTEGER)")
    conn.close()
    with pytest.raises(InvalidInput, match="is not an mschat export"):
        await services.manager.import_file(me, other)


async def test_zip_without_conversations_is_refused(services: Services, tmp_path: Path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "hello")
    me = await services.manager.local_user()
    with pytest.raises(InvalidInput) as info:
        await services.manager.import_file(me, archive)
    assert str(info.value) == refusal(archive)


async def test_a_huge_file_is_refused_from_its_first_bytes(services: Services, tmp_path: Path):
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(8 << 30)  # sparse: 8 GB of zeros, never read whole
    me = await services.manager.local_user()
    with pytest.raises(InvalidInput) as info:
        await services.manager.import_file(me, path)
    assert str(info.value) == refusal(path)


async def test_missing_file_and_directory_are_one_line(services: Services, tmp_path: Path):
    me = await services.manager.local_user()
    with pytest.raises(InvalidInput, match=r"^cannot read .*nope\.json: No such file"):
        await services.manager.import_file(me, tmp_path / "nope.json")
    with pytest.raises(InvalidInput, match=r"^cannot read "):
        await services.manager.import_file(me, tmp_path)


async def test_an_empty_chatgpt_export_imports_nothing(services: Services, tmp_path: Path):
    path = tmp_path / "conversations.json"
    path.write_text("[]\n", encoding="utf-8")
    me = await services.manager.local_user()
    assert await services.manager.import_file(me, path) == []


# ---- reading a JSON array one item at a time ---------------------------------


def test_json_array_items_are_read_one_at_a_time():
    items = [{"n": n, "text": "é😀" * n} for n in range(50)] + [123456, [1, 2], "s", None]
    raw = json.dumps(items, ensure_ascii=False).encode()
    for chunk in (1, 3, 64, 1 << 20):
        assert list(iter_array(io.BytesIO(raw), chunk=chunk)) == items
    assert list(iter_array(io.BytesIO(b"\xef\xbb\xbf [ ]"), chunk=1)) == []


@pytest.mark.parametrize(
    ("raw", "index", "message"),
    [
        (b"{}", 0, "not a JSON array"),
        (b"[1, 2", 2, "expected , or ]"),
        (b"[1, }", 1, "invalid JSON"),
        (b"[1] tail", 1, "text after the array"),
        (b'[{"a": "' + b"x" * 5000, 0, "larger than"),
    ],
)
def test_json_array_errors_name_the_item(raw: bytes, index: int, message: str):
    with pytest.raises(JSONStreamError) as info:
        list(iter_array(io.BytesIO(raw), chunk=16, max_item=1000))
    assert info.value.index == index and message in str(info.value)
