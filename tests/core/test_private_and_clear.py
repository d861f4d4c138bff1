"""A private question (Discord's /private) and clearing the current session (/clear)."""

from __future__ import annotations

import pytest

from mschat.core.errors import ChatDisabled, InvalidInput, UserIgnored
from mschat.core.events import Started
from mschat.core.models import Origin, Status
from mschat.core.services import Services, build_services
from tests.fakes.scripted_provider import ScriptedProvider


async def started(events) -> Started:
    found = [event async for event in events]
    return next(e for e in found if isinstance(e, Started))


async def test_a_private_question_never_goes_into_a_public_session(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    alice = await manager.update_user(alice, alice.id, status="new", attach=True)
    public = await started(manager.chat(alice, "in public", origin=Origin.DISCORD_GUILD))
    assert public.session.public
    alice = await manager.get_user(alice.id)
    private = await started(
        manager.chat(alice, "just me", origin=Origin.DISCORD_GUILD, private=True)
    )
    assert not private.session.public and private.session.id != public.session.id
    assert (private.left_session_id, private.left_reason) == (public.session.id, "public")
    # the private session is current now: the next private question continues it
    alice = await manager.get_user(alice.id)
    again = await started(
        manager.chat(alice, "me again", origin=Origin.DISCORD_GUILD, private=True)
    )
    assert again.session.id == private.session.id and again.left_reason is None
    with pytest.raises(InvalidInput, match="public"):
        await started(manager.ask(alice, "here?", session_id=public.session.id, private=True))


async def test_a_private_question_of_a_new_user_starts_a_private_session(services: Services):
    manager = services.manager
    bob = await manager.user("discord", "2", "bob")
    bob = await manager.update_user(bob, bob.id, status="new")
    event = await started(manager.chat(bob, "secret", origin=Origin.DISCORD_GUILD, private=True))
    assert not event.session.public and event.left_reason is None


async def test_clear_detaches_the_current_session_for_every_manager(services: Services):
    manager = services.manager
    alice = await manager.user("discord", "1", "alice")
    alice = await manager.update_user(alice, alice.id, status="new", attach=True)
    first = await started(manager.chat(alice, "first", origin=Origin.DISCORD_DM))
    alice = await manager.clear_current_session(await manager.get_user(alice.id))
    assert alice.status == Status.NEW and alice.current_session_id is None
    # another instance on the same database sees it: the next question starts afresh
    another = build_services(services.config, providers={"fake": ScriptedProvider()})
    try:
        other = another.manager
        seen = await other.get_user(alice.id)
        assert seen.status == Status.NEW and seen.current_session_id is None
        second = await started(other.chat(seen, "second", origin=Origin.DISCORD_DM))
        assert second.session.id != first.session.id and second.created_session
    finally:
        await another.aclose()


async def test_clear_is_refused_to_ignored_and_disabled_users(services: Services):
    manager = services.manager
    admin = await manager.local_user()
    carol = await manager.user("discord", "3", "carol")  # disabled by default
    with pytest.raises(ChatDisabled):
        await manager.clear_current_session(carol)
    carol = await manager.update_user(admin, carol.id, status="active", ignored=True)
    with pytest.raises(UserIgnored):
        await manager.clear_current_session(carol)
    carol = await manager.get_user(carol.id)
    assert carol.status == Status.ACTIVE
