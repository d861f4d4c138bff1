"""Where streaming replies show (``reply_surfaces``): held for a bot, claimed by one store."""

from __future__ import annotations

import itertools

from mschat.store import Store
from tests.dbs import sql
from tests.store.test_changes import stores

__all__ = ["stores"]  # the fixture: two stores on one database

PAST, NOW, SOON, LATER = (
    "2026-01-01T00:00:00+00:00",
    "2026-01-01T01:00:00+00:00",
    "2026-01-01T01:10:00+00:00",
    "2026-01-01T02:00:00+00:00",
)


IDS = itertools.count(1)


def _reply(store: Store, lease: str = PAST) -> int:
    """A streaming reply whose writer's lease ended at ``lease``."""
    user = store.create_user(kind="discord", external_id=str(next(IDS)), name="u", status="active")
    session = store.create_session(creator_id=user.id, title="t", origin="discord", public=1)
    _, reply = store.add_question(session.id, user.id, "q", model="p/m", lease_until=lease)
    return reply.id


def test_a_usable_surface_is_held_for_a_bot_and_claimed_once(stores: tuple[Store, Store]):
    first, second = stores
    reply = _reply(first)
    first.save_reply_surface(
        reply, "interaction", SOON, application_id="9", token="secret", message_id=None
    )
    api_reply = _reply(first)  # an API caller's: no surface, its connection is gone
    # nobody else gives the bot's reply up while a bot may still finish it
    assert first.interrupt_stale_replies(NOW, PAST, "gone") == 1
    assert first.get_message(reply).status == "streaming"
    assert first.get_message(api_reply).status == "interrupted"
    claims = [first.claim_reply_surfaces(NOW, LATER), second.claim_reply_surfaces(NOW, LATER)]
    assert sorted(len(claim) for claim in claims) == [0, 1]
    (surface,) = claims[0] or claims[1]
    assert (surface.reply_id, surface.kind, surface.token, surface.resume) == (
        reply,
        "interaction",
        "secret",
        True,
    )
    # the claim is the reply's lease
    ((lease,),) = sql(second, "SELECT lease_until FROM messages WHERE id = ?", [reply])
    assert str(lease).startswith("2026-01-01T02:00:00")
    first.drop_reply_surface(reply)
    assert first.claim_reply_surfaces(LATER + "1", "2999") == []


def test_a_surface_too_old_gives_its_reply_up(stores: tuple[Store, Store]):
    first, second = stores
    reply = _reply(first)
    first.save_reply_surface(reply, "message", NOW, channel_id="5", message_id="6")
    assert first.interrupt_stale_replies(SOON, PAST, "gone") == 1  # no longer held
    # the bot still gets it once, to say so in the message
    claims = [second.claim_reply_surfaces(SOON, LATER), first.claim_reply_surfaces(SOON, LATER)]
    (surface,) = claims[0] + claims[1]
    assert (surface.status, surface.resume, surface.message_id) == ("interrupted", False, "6")


def test_a_claim_marks_a_stale_reply_with_an_unusable_surface_interrupted(stores):
    first, _ = stores
    reply = _reply(first)
    first.save_reply_surface(reply, "message", NOW, channel_id="5", message_id="6")
    (surface,) = first.claim_reply_surfaces(SOON, LATER)
    assert (surface.status, surface.resume) == ("interrupted", False)
    assert first.get_message(reply).status == "interrupted"
    assert first.claim_reply_surfaces(SOON, LATER) == []


def test_a_live_writer_keeps_its_surface(stores: tuple[Store, Store]):
    first, second = stores
    reply = _reply(first, lease=LATER)
    first.save_reply_surface(reply, "message", SOON, channel_id="5", message_id="6")
    first.save_reply_surface(reply, "message", SOON, channel_id="5", message_id="7")  # replaced
    assert second.claim_reply_surfaces(NOW, LATER) == []
    first.update_message(reply, status="complete", lease_until=None)
    (surface,) = second.claim_reply_surfaces(NOW, LATER)  # left behind: a bot drops it
    assert (surface.status, surface.resume, surface.message_id) == ("complete", False, "7")


def test_surfaces_are_counted_for_a_copy(stores: tuple[Store, Store]):
    first, second = stores
    assert second.count_reply_surfaces() == 0
    reply = _reply(first)
    first.save_reply_surface(reply, "message", SOON, channel_id="1", message_id="2")
    first.save_reply_surface(_reply(first), "message", PAST, channel_id="1", message_id="3")
    assert second.count_reply_surfaces() == 2  # a usable one and one left to give up
    first.drop_reply_surface(reply)
    assert second.count_reply_surfaces() == 1
