"""Turn-taking in a public session across instances: two managers with stores of their
own on one database (both backends). Asks never interleave, and each later ask's
context holds the earlier replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mschat.core.events import Completed
from mschat.core.models import Origin
from mschat.core.services import Services
from mschat.providers.base import ChatRequest, ProviderEvent
from tests.dbs import sql
from tests.fakes.scripted_provider import ScriptedProvider
from tests.multi.instances import collect, instance

pytestmark = pytest.mark.backends


class Timeline(ScriptedProvider):
    """Echoes in several chunks, noting on a shared timeline when each answer runs."""

    def __init__(self, timeline: list[str]) -> None:
        super().__init__("fake")
        self.timeline = timeline

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ProviderEvent]:
        question = request.messages[-1].content
        self.timeline.append(f"start {question}")
        async for event in super().stream_chat(request):
            # give the other instance every chance to cut in
            await asyncio.sleep(0.005)
            yield event
        self.timeline.append(f"end {question}")


async def test_two_instances_take_turns_in_one_public_session(services: Services):
    timeline: list[str] = []
    providers = [Timeline(timeline), Timeline(timeline)]
    first, second = (instance(services, provider) for provider in providers)
    try:
        alice = await first.user("discord", "1", "alice")
        bob = await second.user("discord", "2", "bob")
        shared = await first.create_session(alice, origin=Origin.DISCORD_GUILD, title="shared")
        asks = [
            collect(manager.ask(user, f"{user.name} {number}", session_id=shared.id))
            for number in range(3)
            for manager, user in ((first, alice), (second, bob))
        ]
        results = await asyncio.gather(*asks)
    finally:
        await first.aclose()
        await second.aclose()
    assert all(isinstance(events[-1], Completed) for events in results)
    # never two answers at once: each start is followed by its own end
    assert len(timeline) == 12
    for start, end in zip(timeline[::2], timeline[1::2], strict=True):
        assert start.startswith("start ") and end == "end " + start.removeprefix("start ")
    # stored in turns: each question, then its answer
    rows = sql(
        services.store,
        "SELECT role, content FROM messages WHERE session_id = ? ORDER BY id",
        [shared.id],
    )
    assert len(rows) == 12
    for (role, question), (reply_role, reply) in zip(rows[::2], rows[1::2], strict=True):
        assert (role, reply_role, reply) == ("user", "assistant", f"Echo: {question}")
    # each ask saw every earlier question and answer, whichever instance wrote them
    requests = sorted(
        (request for provider in providers for request in provider.requests),
        key=lambda request: len(request.messages),
    )
    for number, request in enumerate(requests):
        sent = [(m.role, m.content) for m in request.messages if m.role != "system"]
        assert sent == list(rows[: 2 * number + 1])
