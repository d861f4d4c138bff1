"""Moderation in the core, on both backends: the stored rows of a refused question and a
withheld answer, and what later contexts leave out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.errors import AnswerWithheld, QuestionFlagged
from mschat.core.events import Failed, TextDelta
from mschat.core.services import Services, build_services
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.scripted_provider import ScriptedProvider


@pytest.fixture
async def moderated(
    mschat_home: Path, provider: ScriptedProvider, db_url: str
) -> AsyncIterator[tuple[Services, FakeOpenAI]]:
    """The scripted chat model, moderated by the fake OpenAI server's endpoint."""
    async with FakeOpenAI() as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n'
            f'[providers.mod]\nbase_url = "{server.base_url}"\nmodels = ["m"]\n'
            '[moderation]\nmodel = "omni-moderation-latest"\nprovider = "mod"\n',
        )
        built = build_services(load_config(db=db_url), providers={"fake": provider})
        yield built, server
        await built.aclose()


async def test_a_flagged_question_and_a_withheld_answer_are_stored_flagged(
    moderated: tuple[Services, FakeOpenAI], provider: ScriptedProvider
):
    services, server = moderated
    manager = services.manager
    me = await manager.local_user()
    server.flag("secret plan")
    events = [e async for e in manager.ask(me, "tell me the secret plan", new_session=True)]
    failed = events[-1]
    assert isinstance(failed, Failed) and isinstance(failed.error, QuestionFlagged)
    assert provider.requests == []  # the chat model never saw it
    session_id = failed.message.session_id if failed.message else 0
    # the flagged text never becomes the title others see in session lists
    assert (await manager.get_session(me, session_id)).title == "Flagged question"

    provider.push(chunks=["the secret ", "plan is…"])
    events = [e async for e in manager.ask(me, "and now?", session_id=session_id)]
    assert not [e for e in events if isinstance(e, TextDelta)]  # nothing shown
    assert isinstance(events[-1], Failed) and isinstance(events[-1].error, AnswerWithheld)
    # the flagged question is not in the context of the next question
    assert [m.content for m in provider.requests[-1].messages] == ["and now?"]

    stored = await manager.messages(me, session_id)
    assert [(m.role, m.content, m.status) for m in stored] == [
        ("user", "tell me the secret plan", "flagged"),
        ("assistant", "", "flagged"),
        ("user", "and now?", "complete"),
        ("assistant", "", "flagged"),
    ]
    flagged = "your question was flagged by moderation (harassment) and not answered"
    assert stored[1].error == flagged
    assert stored[3].error == "the answer was withheld: moderation flagged it (harassment)"
    # only the answer that was made is a provider request
    spent = await manager.spending(me, user_id=me.id)
    assert spent.calls == 1 and spent.tokens_out == 2
