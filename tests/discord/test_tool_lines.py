"""Tool calls on Discord: a compact subtext line per call in the answer, over the real
discord.py, the fake Discord, the fake OpenAI server and the in-process MCP server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.events import ToolCallFinished
from mschat.core.services import Services, build_services
from mschat.core.tools.toolbox import Toolbox
from mschat.discord.tool_lines import tool_line
from tests.conftest import write_config
from tests.discord.conftest import start_bot, stop_bot
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.mcp_server import make_server

pytestmark = pytest.mark.timeout(60)

Ask = Callable[..., Awaitable[tuple[list[dict], list[str]]]]


@pytest.fixture
async def ask(mschat_home: Path, fake: FakeDiscord) -> AsyncIterator[Ask]:
    """Ask one Q&A question with ``[mcp.servers.test]`` set to ``policy``; the model's
    rounds are ``scripts``. Returns the bot's replies and the tools that ran."""
    running: list[tuple[Services, object, object]] = []

    async def run(policy: str, *scripts: dict) -> tuple[list[dict], list[str]]:
        async with FakeOpenAI(chunk_size=7) as server:
            write_config(
                mschat_home,
                '[general]\ndefault_model = "fake/fake-model"\n'
                f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["fake-model"]\n'
                f'tools = true\n[mcp.servers.test]\ncommand = "unused"\n{policy}\n',
            )
            config = load_config()
            services = build_services(config)
            ran: list[str] = []
            services.manager.use_tools(Toolbox(config, {"test": make_server(calls=ran)}))
            _bot, task, stop = await start_bot(fake, services)
            running.append((services, task, stop))
            user = await services.manager.user("discord", "1", name="user1")
            await services.manager.update_user(user, user.id, status="new")
            for script in scripts:
                server.push(**script)
            msg = await fake.send_message(1, "use a tool")
            mid = int(msg["id"])
            await fake.wait_until(lambda: "👌" in fake.reactions.get(mid, []))
            return fake.replies_to(mid), ran

    yield run
    for services, task, stop in running:
        await stop_bot(task, stop)  # type: ignore[arg-type]
        await services.aclose()


async def test_an_allowed_remote_tool_shows_its_line_in_the_answer(ask: Ask) -> None:
    [reply], ran = await ask(
        'remote_allow = ["echo"]', {"tool_calls": [("test__echo", {"text": "hi"})]}
    )
    assert ran == ["echo"]
    line, answer = reply["content"].split("\n")
    assert re.fullmatch(r"-# 🔧 test/echo · ok · \d+ ms", line)
    assert answer == "Tool results: echo: hi"


async def test_a_tool_not_allowed_on_discord_shows_the_denied_line_and_never_runs(
    ask: Ask, fake: FakeDiscord
) -> None:
    [reply], ran = await ask(
        'allow = ["*"]\nremote_allow = ["noop"]', {"tool_calls": [("test__echo", {"text": "x"})]}
    )
    assert ran == []
    assert reply["content"].split("\n")[0] == "-# 🔧 test/echo · not available to you"
    # nothing the bot sent may ping
    for call in fake.calls_to("POST", "/messages") + fake.calls_to("PATCH", "/messages"):
        if "content" in call.body:
            assert call.body["allowed_mentions"]["parse"] == []


async def test_a_hostile_tool_name_neither_pings_nor_breaks_the_markdown(ask: Ask) -> None:
    name = "test__<@12345> **bold** `x` @everyone\n# big https://evil.example/a_b"
    [reply], ran = await ask('remote_allow = ["*"]', {"tool_calls": [(name, {})]})
    assert ran == []
    line = reply["content"].split("\n")[0]
    assert line.startswith("-# 🔧 test/") and line.endswith(" · not run")
    assert "<@12345>" not in line and "@everyone" not in line and "**" not in line
    assert "`x`" not in line and "https://" not in line and "\n" not in line


async def test_a_long_answer_after_a_tool_call_is_still_split(ask: Ask) -> None:
    long = "\n".join(["word " * 59 + "word"] * 7)  # 2,100 characters in 7 lines
    replies, _ = await ask(
        'remote_allow = ["noop"]', {"tool_calls": [("test__noop", {})]}, {"reply": long}
    )
    assert len(replies) == 2 and all(len(r["content"]) <= 2000 for r in replies)
    assert re.match(r"-# 🔧 test/noop · ok · \d+ ms\nword word", replies[0]["content"])
    assert " ".join(r["content"] for r in replies).split().count("word") == 60 * 7


def test_every_status_has_a_line() -> None:
    def line(status: str, notice: str | None = None) -> str:
        return tool_line(ToolCallFinished("c", "files", "read_file", status, "", 7, notice))

    assert line("error") == "-# 🔧 files/read\\_file · error · 7 ms"
    assert line("timeout") == "-# 🔧 files/read\\_file · timeout · 7 ms"
    assert line("denied", "tool files/read_file needs confirmation; not run (…)") == (
        "-# 🔧 files/read\\_file · needs confirmation"
    )
