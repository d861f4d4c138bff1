"""`mschat serve-admin` end to end: a real server process, the TUI in headless Chromium.

The terminal draws on a canvas (xterm.js with its WebGL or canvas renderer), so the
test reads what it shows from xterm.js's own buffer: the DevTools protocol finds the
page's Terminal object (``Runtime.queryObjects``) and copies its visible rows into a
hidden element after every write, which Playwright's assertions then wait on.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mschat.core.services import Services
from tests.servers import MschatProcess

CHROMIUM = Path("/usr/bin/chromium")
#: Chromium as root needs --no-sandbox; the rest keeps it off the (closed) network
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: seconds each step may take in the browser (a TUI process starts per page)
STEP = 30_000
TOKEN = "correct horse battery staple"

#: run on the array of every object of the page: the xterm.js Terminal, whose visible
#: rows are then kept in <pre id="screen-text"> after every write it parses
MIRROR_SCREEN = """function () {
  const terminal = this.find((o) => {
    try {
      return typeof o.onWriteParsed === "function" && typeof o.buffer.active.getLine === "function";
    } catch (error) {
      return false;  // a prototype's getter
    }
  });
  if (!terminal) return false;
  const mirror = document.createElement("pre");
  mirror.id = "screen-text";
  mirror.hidden = true;
  document.body.appendChild(mirror);
  const copy = () => {
    const buffer = terminal.buffer.active, rows = [];
    for (let y = 0; y < terminal.rows; y++) {
      rows.push(buffer.getLine(buffer.viewportY + y).translateToString(true));
    }
    mirror.textContent = rows.join("\\n");
    mirror.dataset.cols = terminal.cols;
    mirror.dataset.rows = terminal.rows;
  };
  terminal.onWriteParsed(copy);
  copy();
  return true;
}"""


def browser_or_skip() -> Any:
    """Playwright's module; without Chromium (or Playwright) skip, but fail in CI."""
    missing = None
    try:
        from playwright import async_api
    except ImportError:
        missing = "the playwright package is not installed"
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {missing}", pytrace=False)
        pytest.skip(missing)
    return async_api


@pytest.fixture
async def two_sessions(services: Services) -> AsyncIterator[Services]:
    """A store holding two sessions of the local admin, each with a question and answer."""
    manager = services.manager
    me = await manager.local_user()
    older = await manager.create_session(me, title="Alpha topic")
    await manager.import_messages(
        me, older.id, [("user", "What is alpha?"), ("assistant", "Alpha is the first letter.")]
    )
    newer = await manager.create_session(me, title="Beta topic")
    await manager.import_messages(
        me, newer.id, [("user", "What is beta?"), ("assistant", "Beta is the second letter.")]
    )
    yield services


async def mirror_screen(page: Any) -> Any:
    """A locator whose text is what the page's terminal shows now."""
    devtools = await page.context.new_cdp_session(page)
    prototype = await devtools.send("Runtime.evaluate", {"expression": "Object.prototype"})
    every = await devtools.send(
        "Runtime.queryObjects", {"prototypeObjectId": prototype["result"]["objectId"]}
    )
    found = await devtools.send(
        "Runtime.callFunctionOn",
        {
            "objectId": every["objects"]["objectId"],
            "functionDeclaration": MIRROR_SCREEN,
            "returnByValue": True,
        },
    )
    assert found["result"].get("value") is True, found
    await devtools.detach()
    return page.locator("#screen-text")


async def click_cell(page: Any, screen: Any, *, column: int, row: int) -> None:
    """Click the middle of one cell of the terminal."""
    box = await page.locator(".xterm-screen").bounding_box()
    columns = int(await screen.get_attribute("data-cols"))
    rows = int(await screen.get_attribute("data-rows"))
    width, height = box["width"] / columns, box["height"] / rows
    await page.mouse.click(box["x"] + (column + 0.5) * width, box["y"] + (row + 0.5) * height)


@pytest.mark.slow
@pytest.mark.backends
@pytest.mark.timeout(150)
async def test_the_admin_logs_in_lists_sessions_and_opens_one(
    two_sessions: Services, db_url: str, tmp_path: Path
):
    playwright_api = browser_or_skip()
    expect = playwright_api.expect
    env = {**os.environ, "MSCHAT_DB": db_url, "MSCHAT_ADMIN_TOKEN": TOKEN}
    server = await MschatProcess.start(
        env, "serve-admin", "--port", "0", ready="serving the admin on"
    )
    try:
        found = re.search(r"serving the admin on (http://\S+)", server.log)
        assert found, server.log
        url = found.group(1)
        async with playwright_api.async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                tmp_path / "chromium",
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                await page.goto(url)
                await expect(page).to_have_url(f"{url}/login")
                await page.fill("#token", TOKEN)
                await page.click("button[type=submit]")
                await expect(page.locator("body.-first-byte")).to_have_count(1, timeout=STEP)
                screen = await mirror_screen(page)
                # it opens on the Admin screen: the users, with the tabs of the rest
                for tab in ("Users", "Queue", "Feedback", "Interactions", "API calls"):
                    await expect(screen).to_contain_text(tab, timeout=STEP)
                await expect(screen).to_contain_text("local", timeout=STEP)
                # the terminal takes the keyboard (no click: a click starts a selection,
                # which the next Escape would only clear)
                await page.focus("textarea.xterm-helper-textarea")
                await page.keyboard.press("Escape")  # back to the sessions
                # the sidebar lists both sessions; the newest opens first
                await expect(screen).to_contain_text("Alpha topic", timeout=STEP)
                await expect(screen).to_contain_text("Beta topic", timeout=STEP)
                await expect(screen).to_contain_text("Beta is the second letter.", timeout=STEP)
                assert (await screen.text_content()).count("Beta topic") == 2  # list, title
                # a click in the sidebar's free space focuses it (Ctrl+B would too, but
                # Textual moves the focus a message later than the keys that follow);
                # Down: the older session; Enter: open it
                lines = (await screen.text_content()).splitlines()
                row = next(i for i, line in enumerate(lines) if "Alpha topic" in line)
                await click_cell(page, screen, column=2, row=row + 3)
                await page.keyboard.press("ArrowDown")
                await page.keyboard.press("Enter")
                await expect(screen).to_contain_text("Alpha is the first letter.", timeout=STEP)
                await expect(screen).not_to_contain_text("Beta is the second letter.")
                # nothing came from another site (no web fonts, no scripts)
                assert requested and all(
                    address.startswith((f"{url}/", url.replace("http", "ws", 1) + "/", "data:"))
                    for address in requested
                ), requested
            finally:
                await context.close()
    finally:
        assert await server.stop() == 0, server.log
    assert TOKEN not in server.log
