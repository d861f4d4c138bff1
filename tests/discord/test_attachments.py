"""Files on Discord: a Q&A message's attachments and the ``attachment`` option of
/chat and /private reach the model; a refused file is one line, nothing asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.core.services import Services
from tests.conftest import eventually, scripted_services, vision_config
from tests.discord.conftest import Harness
from tests.fakes.scripted_provider import ScriptedProvider

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


@pytest.fixture
async def services(
    mschat_home: Path, provider: ScriptedProvider, db_url: str
) -> AsyncIterator[Services]:
    """A model that sees; files may come from the fake's loopback CDN."""
    config = vision_config("[attachments]\nmax_bytes = 4096\nfetch_private = true\n")
    async with scripted_services(mschat_home, provider, db_url, config) as built:
        yield built


async def test_a_question_with_files_in_a_qa_channel(h: Harness) -> None:
    await h.discord_user(5, status="active")
    question = await h.fake.send_message(
        5, "What is this?", files=[("cat.png", PNG), ("notes.md", b"# plan\n")]
    )
    await h.fake.wait_until(lambda: "👌" in h.fake.reactions.get(int(question["id"]), []))
    sent = h.provider.requests[-1].messages[-1]
    assert [(i.mime, i.data) for i in sent.images] == [("image/png", PNG)]
    assert '<file name="notes.md">\n# plan\n\n</file>' in sent.content
    user = await h.discord_user(5)
    session = (await h.manager.list_sessions(user))[0]
    stored = (await h.manager.messages(user, session.id))[0]
    assert [a.name for a in stored.attachments] == ["cat.png", "notes.md"]


@pytest.mark.parametrize("command", ["chat", "private"])
async def test_the_attachment_option_of_chat_and_private(h: Harness, command: str) -> None:
    await h.discord_user(6, status="active")
    await h.fake.slash(6, command, {"prompt": "Describe it", "attachment": ("cat.png", PNG)})
    await eventually(lambda: h.provider.requests)
    sent = h.provider.requests[-1].messages[-1]
    assert sent.content == "Describe it"
    assert [i.data for i in sent.images] == [PNG]


async def test_a_refused_file_is_one_line_and_nothing_is_asked(h: Harness) -> None:
    await h.discord_user(7, status="active")
    question = await h.fake.send_message(7, "Look", files=[("big.txt", b"x" * 5000)])
    reply = await h.fake.wait_until(lambda: (h.fake.replies_to(question["id"]) or [None])[0])
    assert "big.txt is larger than 4.0 KB" in reply["content"]
    assert "\n" not in reply["content"].strip()
    assert h.provider.requests == []
    await h.fake.wait_until(lambda: "❌" in h.fake.reactions.get(int(question["id"]), []))
