"""Feedback through two managers on one database (two bot processes): one vote each."""

from __future__ import annotations

import asyncio

import pytest

from mschat.core.errors import InvalidInput, PermissionDenied
from mschat.core.services import Services, build_services
from tests.fakes.scripted_provider import ScriptedProvider


async def test_two_managers_count_a_members_vote_once(services: Services):
    other = build_services(services.config, providers={"fake": ScriptedProvider()})
    try:
        first, second = services.manager, other.manager
        alice = await first.user("discord", "1", "alice")
        session = await first.create_session(alice, title="t", public=True)
        reply = await asyncio.to_thread(
            services.store.add_message, session_id=session.id, role="assistant", content="a"
        )
        bob = await second.user("discord", "2", "bob")
        votes = await asyncio.gather(
            *(m.add_feedback(bob, reply.id, "good") for m in (first, second, first, second))
        )
        assert sorted(votes) == [False, False, False, True]
        texts = await asyncio.gather(
            first.add_feedback(bob, reply.id, "other", "one"),
            second.add_feedback(bob, reply.id, "other", "two"),
        )
        assert texts == [True, True]
        assert await second.feedback_counts(reply.id) == {"good": 1, "other": 2}
        with pytest.raises(InvalidInput):
            await first.add_feedback(bob, reply.id, "great")
        with pytest.raises(PermissionDenied):
            await first.list_feedback(bob)
    finally:
        await other.aclose()
