"""Files with questions: checked before anything is stored, stored once, shown to the
model (text inlined, images to models that see), kept in history, gone with the session."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.core.attachments import safe_name
from mschat.core.errors import InvalidInput
from mschat.core.events import Completed
from mschat.core.services import Services
from mschat.providers.openai_compat import build_payload
from tests.conftest import scripted_services, vision_config
from tests.dbs import sql
from tests.fakes.scripted_provider import ScriptedProvider

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0" + bytes(100)
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(50)
GIF = b"GIF89a" + bytes(40)


@pytest.fixture
async def vision(
    mschat_home: Path, provider: ScriptedProvider, db_url: str
) -> AsyncIterator[Services]:
    """Services whose default model sees images; ``fake/blind`` does not."""
    limits = "[attachments]\nmax_bytes = 4096\nmax_count = 3\n"
    async with scripted_services(mschat_home, provider, db_url, vision_config(limits)) as built:
        yield built


async def _ask(services: Services, text: str, files, **options) -> list:
    user = await services.manager.local_user()
    return [e async for e in services.manager.ask(user, text, attachments=files, **options)]


async def test_text_is_inlined_and_images_sent_to_a_model_that_sees(
    vision: Services, provider: ScriptedProvider
):
    events = await _ask(vision, "what is here?", [("notes.md", b"# plan\n"), ("cat.png", PNG)])
    assert isinstance(events[-1], Completed)
    sent = provider.requests[-1].messages[-1]
    assert sent.content == 'what is here?\n\n<file name="notes.md">\n# plan\n\n</file>'
    assert [(i.mime, i.data) for i in sent.images] == [("image/png", PNG)]
    wire = build_payload(provider.requests[-1])["messages"][-1]["content"]
    assert wire[0] == {"type": "text", "text": sent.content}
    assert wire[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    stored = (
        await vision.manager.messages(await vision.manager.local_user(), events[0].session.id)
    )[0]
    assert [(a.name, a.mime, a.size) for a in stored.attachments] == [
        ("notes.md", "text/markdown", 7),
        ("cat.png", "image/png", len(PNG)),
    ]


async def test_every_image_kind_is_known_by_its_bytes_not_its_name(
    vision: Services, provider: ScriptedProvider
):
    await _ask(vision, "q", [("a.txt", JPEG), ("b", WEBP), ("c.png", GIF)])
    assert [i.mime for i in provider.requests[-1].messages[-1].images] == [
        "image/jpeg",
        "image/webp",
        "image/gif",
    ]


async def test_history_keeps_files_and_a_blind_model_is_told_of_them(
    vision: Services, provider: ScriptedProvider
):
    first = await _ask(vision, "look", [("cat.png", PNG), ("data.csv", b"a,b\n1,2\n")])
    session_id = first[0].session.id
    await _ask(vision, "and now?", [], session_id=session_id)
    earlier = provider.requests[-1].messages[0]
    assert earlier.images and '<file name="data.csv">' in earlier.content
    # a model that does not see still gets the question and the text, the image named
    await _ask(vision, "and you?", [], session_id=session_id, model="fake/blind")
    earlier = provider.requests[-1].messages[0]
    assert not earlier.images
    assert "[cat.png: not shown to this model]" in earlier.content
    assert '<file name="data.csv">' in earlier.content


async def test_an_image_for_a_blind_model_is_refused_before_anything_is_stored(
    vision: Services, provider: ScriptedProvider
):
    with pytest.raises(InvalidInput, match=r"model fake/blind cannot see images \(cat\.png\)"):
        await _ask(vision, "look", [("cat.png", PNG)], model="fake/blind")
    assert provider.requests == []
    assert sql(vision.store, "SELECT count(*) FROM messages") == [(0,)]
    assert sql(vision.store, "SELECT count(*) FROM attachments") == [(0,)]


@pytest.mark.parametrize(
    ("files", "refusal"),
    [
        (
            [("big.txt", b"x" * 5000)],
            r"big\.txt is larger than 4\.0 KB, the most a file may be \(attachments\.max_bytes\)",
        ),
        (
            [(f"{n}.txt", b"x") for n in range(4)],
            r"4 files attached; a question may carry at most 3",
        ),
        ([("a.bin", b"\x00\x01\x02")], r"a\.bin is neither an image .* nor UTF-8 text"),
        ([("latin.txt", "café".encode("latin-1"))], r"latin\.txt is neither an image"),
        ([("empty.txt", b"")], r"empty\.txt is empty"),
    ],
)
async def test_refused_files_store_nothing(
    vision: Services, provider: ScriptedProvider, files, refusal: str
):
    with pytest.raises(InvalidInput, match=refusal):
        await _ask(vision, "q", files)
    assert provider.requests == []
    assert sql(vision.store, "SELECT count(*) FROM messages") == [(0,)]


async def test_files_go_with_the_sessions_that_list_them(vision: Services):
    manager = vision.manager
    me = await manager.local_user()
    first = await _ask(vision, "q", [("cat.png", PNG)])
    second = await _ask(vision, "q", [("cat.png", PNG), ("dog.txt", b"woof")], new_session=True)
    assert sql(vision.store, "SELECT count(*) FROM attachments") == [(2,)]
    await manager.remove_session(me, second[0].session.id)
    assert sql(vision.store, "SELECT count(*) FROM attachments") == [(1,)]
    await manager.remove_session(me, first[0].session.id)
    assert sql(vision.store, "SELECT count(*) FROM attachments") == [(0,)]


def test_names_lose_their_folders_and_control_characters():
    assert safe_name("../../etc/pass\x1b[2Jwd.txt") == "pass_[2Jwd.txt"
    assert safe_name("C:\\Users\\me\\notes.md") == "notes.md"
    assert safe_name("   ") == "file"
    assert len(safe_name("a" * 500)) == 200


async def test_export_and_import_keep_the_files_and_trust_no_hash(vision: Services, tmp_path):
    manager = vision.manager
    me = await manager.local_user()
    events = await _ask(vision, "look", [("cat.png", PNG), ("notes.md", b"# plan\n")])
    exported = json.loads(await manager.export_session(me, events[0].session.id, "json"))
    files = exported["messages"][0]["attachments"]
    assert [(f["name"], base64.b64decode(f["data"])) for f in files] == [
        ("cat.png", PNG),
        ("notes.md", b"# plan\n"),
    ]
    markdown = await manager.export_session(me, events[0].session.id, "markdown")
    assert "📎 cat.png (image/png, 216 bytes)" in markdown
    # a document claiming another content's hash: the hash is computed again
    files[1]["sha256"] = files[0]["sha256"]
    files[1]["data"] = base64.b64encode(b"# changed\n").decode()
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exported))
    (imported,) = await manager.import_file(me, path)
    question = (await manager.messages(me, imported.id))[0]
    data = await asyncio.to_thread(
        vision.store.attachment_data, [a.sha256 for a in question.attachments]
    )
    assert [data[a.sha256] for a in question.attachments] == [PNG, b"# changed\n"]
    # the original session's notes are untouched
    original = (await manager.messages(me, events[0].session.id))[0]
    notes = await asyncio.to_thread(vision.store.attachment_data, [original.attachments[1].sha256])
    assert list(notes.values()) == [b"# plan\n"]
    files[0]["data"] = "not base64!"
    path.write_text(json.dumps(exported))
    with pytest.raises(InvalidInput, match="attachment without a name and base64 data"):
        await manager.import_file(me, path)


async def test_a_fork_keeps_the_files(vision: Services, provider: ScriptedProvider):
    manager = vision.manager
    me = await manager.local_user()
    events = await _ask(vision, "look", [("cat.png", PNG)])
    question = (await manager.messages(me, events[0].session.id))[0]
    await _ask(vision, "more", [], session_id=events[0].session.id)
    answer = (await manager.messages(me, events[0].session.id))[-1]
    fork = await manager.fork(me, answer.id - 1, "more, please")
    copied = (await manager.messages(me, fork.id))[0]
    assert copied.attachments == question.attachments
    await manager.remove_session(me, events[0].session.id)
    assert sql(vision.store, "SELECT count(*) FROM attachments") == [(1,)]
