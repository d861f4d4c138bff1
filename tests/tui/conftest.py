"""Helpers for the TUI tests: build the app over the shared services, wait on conditions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot

from mschat.core.services import Services
from mschat.tui.app import MschatApp, make_app

SIZE = (120, 40)


def build_app(services: Services, **kwargs: object) -> MschatApp:
    """The real app with a fast poll, so live-update tests stay quick."""
    return make_app(services, poll_interval=0.1, **kwargs)  # type: ignore[arg-type]


async def wait_for(
    pilot: Pilot, condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll a condition between pilot pauses; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def ready(pilot: Pilot) -> MschatApp:
    """Wait until the app loaded its user and first sidebar page."""
    app = pilot.app
    assert isinstance(app, MschatApp)
    await wait_for(pilot, lambda: app.ready, what="start-up")
    return app


def screen_lines(app: MschatApp) -> list[str]:
    """Every cell of the screen as drawn now, one string per line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen_text(app: MschatApp) -> str:
    """The screen as drawn now."""
    return "\n".join(screen_lines(app))


async def type_and_send(pilot: Pilot, text: str) -> None:
    """Type into the prompt and press Enter."""
    app = pilot.app
    assert isinstance(app, MschatApp)
    app.prompt.focus()
    app.prompt.text = text
    await pilot.press("enter")
