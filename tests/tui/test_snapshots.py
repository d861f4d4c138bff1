"""SVG snapshots of the main screen, settings and search at a fixed size and fixed data.

Synchronous on purpose: ``snap_compare`` runs the app in its own event loop.
Regenerate with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from mschat.tui.app import MschatApp, make_app
from mschat.tui.screens.admin import AdminScreen
from mschat.tui.screens.settings import SettingsScreen
from tests.conftest import write_config
from tests.fakes.scripted_provider import ScriptedProvider

SIZE = (120, 36)
DAY = "2025-03-14T09:{minute:02d}:00.000000+00:00"
ANSWER = """Use a list comprehension:

```python
squares = [n * n for n in range(10)]
```

It is **short** and fast."""


@pytest.fixture
def fixed_services(mschat_home: Path) -> Iterator[Services]:
    """Services over a database filled with fixed timestamps."""
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model", "other"]\n'
        '[context_windows]\n"fake-model" = 4096\n',
    )
    services = build_services(load_config(), providers={"fake": ScriptedProvider("fake")})
    store = services.store
    me = store.create_user(
        kind="local",
        external_id="tester",
        name="tester",
        status="active",
        admin=1,
        created=DAY.format(minute=0),
        updated=DAY.format(minute=0),
        modified=DAY.format(minute=0),
    )
    alice = store.create_user(
        kind="discord",
        external_id="4242",
        name="alice",
        status="active",
        created=DAY.format(minute=0),
        updated=DAY.format(minute=0),
        modified=DAY.format(minute=0),
    )
    titles = ["Python squares", "Trip to Lisbon", "Release notes draft"]
    for index, title in enumerate(titles):
        stamp = DAY.format(minute=10 - index)
        session = store.create_session(
            creator_id=me.id,
            title=title,
            model="fake/fake-model",
            system_msg=None,
            public=int(index == 1),
            origin="terminal",
            created=stamp,
            updated=stamp,
            modified=stamp,
        )
        if index == 0:
            store.add_message(
                session_id=session.id,
                author_id=me.id,
                role="user",
                content="How do I square numbers in Python?",
                created=DAY.format(minute=1),
            )
            store.add_message(
                session_id=session.id,
                author_id=None,
                role="assistant",
                content=ANSWER,
                model="fake/fake-model",
                tokens_in=40,
                tokens_out=25,
                created=DAY.format(minute=2),
            )
            store.update_session(session.id, updated=DAY.format(minute=20))
    store.create_session(
        creator_id=alice.id,
        title="Alice asks",
        model="fake/fake-model",
        system_msg=None,
        public=1,
        origin="discord_guild",
        created=DAY.format(minute=5),
        updated=DAY.format(minute=5),
        modified=DAY.format(minute=5),
    )
    store.update_user(me.id, current_session_id=1)
    yield services
    asyncio.run(services.aclose())


async def until_ready(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    assert isinstance(app, MschatApp)
    for _ in range(500):
        if app.ready and app.chat.views:
            break
        await pilot.pause(0.01)
    assert app.ready
    await pilot.pause()


def test_main_screen(snap_compare, fixed_services: Services):
    app = make_app(fixed_services)
    assert snap_compare(app, terminal_size=SIZE, run_before=until_ready)


def test_settings_screen(snap_compare, fixed_services: Services):
    app = make_app(fixed_services)

    async def open_settings(pilot) -> None:  # type: ignore[no-untyped-def]
        await until_ready(pilot)
        await pilot.press("f9")
        for _ in range(500):
            if isinstance(pilot.app.screen, SettingsScreen):
                break
            await pilot.pause(0.01)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_settings)


def test_search_screen(snap_compare, fixed_services: Services):
    app = make_app(fixed_services)

    async def search(pilot) -> None:  # type: ignore[no-untyped-def]
        await until_ready(pilot)
        await pilot.press("ctrl+f")
        await pilot.press(*"squares")
        for _ in range(500):
            if getattr(pilot.app.screen, "hits", None):
                break
            await pilot.pause(0.01)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=search)


def test_admin_users_tab(snap_compare, fixed_services: Services):
    store = fixed_services.store
    [alice] = store.find_users("alice")
    store.update_user(alice.id, priority=2, rate_limit=20)
    bob = store.create_user(
        kind="api",
        external_id="key-7",
        name="bob",
        status="disabled",
        ignored=1,
        created=DAY.format(minute=0),
        updated=DAY.format(minute=0),
        modified=DAY.format(minute=0),
    )
    store.update_user(bob.id, rate_limit=0)
    # an hour ago: inside the default period (30 days), whatever day the test runs
    started = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="microseconds")
    store.add_api_call(
        user_id=alice.id,
        provider="openai",
        model="gpt-4o-mini",
        status="ok",
        prompt_tokens=120_000,
        completion_tokens=40_000,
        started=started,
    )
    app = make_app(fixed_services)

    async def open_admin(pilot) -> None:  # type: ignore[no-untyped-def]
        await until_ready(pilot)
        await pilot.press("f7")
        for _ in range(500):
            screen = pilot.app.screen
            if isinstance(screen, AdminScreen) and screen.users:
                break
            await pilot.pause(0.01)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_admin)
