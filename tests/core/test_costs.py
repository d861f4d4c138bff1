"""Who may see what answers cost (the manager), on both backends."""

from __future__ import annotations

import pytest

from mschat.core.errors import PermissionDenied
from mschat.core.services import Services


async def test_costs_are_your_own_or_an_admins(services: Services):
    manager = services.manager
    admin = await manager.local_user()
    ann = await manager.user("api", "ann")
    bob = await manager.user("api", "bob")
    async for _ in manager.ask(ann, "hello", new_session=True):
        pass
    session = (await manager.list_sessions(ann))[0]

    mine = await manager.spending(ann, user_id=ann.id)
    assert mine.calls == 1 and mine.tokens_out > 0
    assert not mine.cost.known  # the scripted model has no price
    assert (await manager.spending(admin, user_id=ann.id)).calls == 1
    assert (await manager.spending(admin)).calls == 1  # everyone's
    assert set(await manager.spending_per_user(admin)) == {ann.id}
    for denied in (
        manager.spending(bob, user_id=ann.id),
        manager.spending(bob),
        manager.spending(bob, session_id=session.id),  # a private session of another
        manager.spending_per_user(bob),
    ):
        with pytest.raises(PermissionDenied):
            await denied
