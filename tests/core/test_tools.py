"""The tool-call loop in the core, on both backends: the policy's paths for local and
remote users, approval, timeouts, truncation, max_rounds, lazy starts, storage, export."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mschat.config import load_config
from mschat.core.events import Completed, ToolCallFinished, ToolCallStarted
from mschat.core.services import Services, build_services
from mschat.core.tools.loop import ToolRequest
from mschat.core.tools.toolbox import Toolbox
from tests.conftest import write_config
from tests.dbs import sql
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.mcp_server import HOSTILE, make_server

pytestmark = pytest.mark.timeout(60)

Make = Callable[..., Awaitable[Services]]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    """The fake OpenAI server (its model takes tools when the config says so)."""
    async with FakeOpenAI(chunk_size=7) as fake:
        yield fake


@pytest.fixture
async def make(mschat_home: Path, db_url: str, server: FakeOpenAI) -> AsyncIterator[Make]:
    """Services whose MCP server ``test`` is the in-process test server.

    ``policy``: keys of ``[mcp.servers.test]``; ``tools``: the provider's ``tools``.
    The names of the tools that actually ran collect in ``services.ran``.
    """
    built: list[Services] = []

    async def build(
        policy: str = "", *, tools: bool = True, extra: str = "", calls: list[str] | None = None
    ) -> Services:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["fake-model"]\n'
            f"tools = {str(tools).lower()}\n"
            f'[mcp.servers.test]\ncommand = "unused"\n{policy}\n{extra}',
        )
        config = load_config(db=db_url)
        services = build_services(config)
        ran = calls if calls is not None else []
        services.manager.use_tools(Toolbox(config, {"test": make_server(calls=ran)}))
        services.ran = ran  # type: ignore[attr-defined]
        built.append(services)
        return services

    yield build
    for services in built:
        await services.aclose()


async def _ask(services: Services, user_kind: str = "local", **options: Any) -> list[Any]:
    manager = services.manager
    if user_kind == "local":
        user = await manager.local_user()
    else:
        user = await manager.user(user_kind, "member-1", "member")
        user.status = "active"
    return [e async for e in manager.ask(user, "use a tool", new_session=True, **options)]


def _finished(events: list[Any]) -> list[ToolCallFinished]:
    return [e for e in events if isinstance(e, ToolCallFinished)]


async def test_an_allowed_call_runs_and_the_model_gets_its_result(make: Make, server: FakeOpenAI):
    services = await make('allow = ["echo"]')
    server.push(tool_calls=[("test__echo", {"text": "hi there"})])
    events = await _ask(services)

    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [(e.server, e.tool, json.loads(e.arguments)) for e in started] == [
        ("test", "echo", {"text": "hi there"})
    ]
    [done] = _finished(events)
    assert (done.status, done.result, done.notice) == ("ok", "echo: hi there", None)
    completed = events[-1]
    assert isinstance(completed, Completed)
    assert completed.message.content == "Tool results: echo: hi there"
    # the model was offered the tools, then got its call and the result back
    first, second = server.requests
    assert "test__echo" in [t["function"]["name"] for t in first["tools"]]
    asked, answer = second["messages"][-2:]
    assert asked["tool_calls"][0]["function"]["name"] == "test__echo"
    assert answer == {
        "role": "tool",
        "content": "echo: hi there",
        "tool_call_id": asked["tool_calls"][0]["id"],
    }
    # stored with the reply, and in the JSON export
    me = await services.manager.local_user()
    exported = json.loads(
        await services.manager.export_session(me, completed.message.session_id, "json")
    )
    [call] = exported["messages"][-1]["tool_calls"]
    assert (call["server"], call["tool"], call["status"], call["result"]) == (
        "test",
        "echo",
        "ok",
        "echo: hi there",
    )
    assert json.loads(call["arguments"]) == {"text": "hi there"}
    # one api_calls row per provider request: the tool round and the answer
    rows = sql(
        services.store,
        "SELECT finish_reason FROM api_calls WHERE message_id = ? ORDER BY id",
        [completed.message.id],
    )
    assert [row[0] for row in rows] == ["tool_calls", "stop"]


@pytest.mark.parametrize("answer", [True, False])
async def test_the_terminal_user_is_asked_about_a_tool_not_allowed(
    make: Make, server: FakeOpenAI, answer: bool
):
    services = await make()
    asked: list[ToolRequest] = []

    async def approve(request: ToolRequest) -> bool:
        asked.append(request)
        return answer

    server.push(tool_calls=[("test__echo", {"text": "x"})])
    events = await _ask(services, approve=approve)
    assert [r.name for r in asked] == ["test/echo"]
    [done] = _finished(events)
    assert done.status == ("ok" if answer else "denied")
    assert services.ran == (["echo"] if answer else [])  # type: ignore[attr-defined]


async def test_without_a_callback_the_call_is_denied_with_a_notice(make: Make, server: FakeOpenAI):
    services = await make()
    server.push(tool_calls=[("test__echo", {"text": "x"})])
    events = await _ask(services)
    [done] = _finished(events)
    assert done.status == "denied"
    assert done.notice is not None and "--allow-tool test/echo" in done.notice
    assert "not available to this user" in done.result
    assert services.ran == []  # type: ignore[attr-defined]
    assert isinstance(events[-1], Completed)


async def test_deny_wins_over_allow_and_is_not_offered(make: Make, server: FakeOpenAI):
    services = await make('allow = ["*"]\ndeny = ["echo"]\nremote_allow = ["*"]')
    server.push(tool_calls=[("test__echo", {"text": "x"})])
    events = await _ask(services, approve=_yes)
    [done] = _finished(events)
    assert done.status == "denied" and services.ran == []  # type: ignore[attr-defined]
    assert "test__echo" not in [t["function"]["name"] for t in server.requests[0]["tools"]]


async def _yes(request: ToolRequest) -> bool:
    return True


@pytest.mark.parametrize("kind", ["discord", "api"])
async def test_remote_users_run_only_remote_allowed_or_granted_tools(
    make: Make, server: FakeOpenAI, kind: str
):
    services = await make('allow = ["*"]\nremote_allow = ["noop"]')
    server.push(tool_calls=[("test__echo", {"text": "x"}), ("test__noop", {})])
    events = await _ask(services, kind, approve=_yes)  # a callback changes nothing for them
    echo, noop = _finished(events)
    assert (echo.status, noop.status) == ("denied", "ok")
    assert echo.notice == "tool test/echo is not available to you; it was not run"
    assert services.ran == ["noop"]  # type: ignore[attr-defined]

    manager = services.manager
    admin = await manager.local_user()
    member = await manager.user(kind, "member-1")
    assert await manager.change_tool_grants(admin, member.id, add=["test/echo"]) == ["test/echo"]
    server.push(tool_calls=[("test__echo", {"text": "y"})])
    [again] = _finished(await _ask(services, kind))
    assert again.status == "ok" and again.result == "echo: y"


async def test_a_hanging_tool_times_out(make: Make, server: FakeOpenAI):
    services = await make('allow = ["*"]\ntimeout = 0.3')
    server.push(tool_calls=[("test__hang", {})])
    events = await _ask(services)
    [done] = _finished(events)
    assert done.status == "timeout" and "0.3 s" in done.result
    assert isinstance(events[-1], Completed)


async def test_a_big_result_is_truncated_with_a_marker(make: Make, server: FakeOpenAI):
    services = await make('allow = ["*"]', extra="[tools]\nmax_result_chars = 1000")
    server.push(tool_calls=[("test__big", {})])
    events = await _ask(services)
    [done] = _finished(events)
    assert done.result.startswith("x" * 1000)
    assert done.result.endswith("[… truncated: 999000 more characters]")
    sent = server.requests[1]["messages"][-1]["content"]
    assert len(sent) < 1100


async def test_max_rounds_ends_with_a_request_without_tools(make: Make, server: FakeOpenAI):
    services = await make('allow = ["*"]', extra="[tools]\nmax_rounds = 2")
    for _ in range(3):
        server.push(tool_calls=[("test__noop", {})])
    events = await _ask(services)
    assert len(_finished(events)) == 2
    assert len(server.requests) == 3
    assert [bool(r.get("tools")) for r in server.requests] == [True, True, False]
    assert isinstance(events[-1], Completed)


async def test_errors_bad_arguments_and_unknown_tools_are_told_to_the_model(
    make: Make, server: FakeOpenAI
):
    services = await make('allow = ["*"]')
    server.push(tool_calls=[("test__fail", {}), ("test__echo", "{not json"), ("nope__x", {})])
    events = await _ask(services)
    failed, bad, unknown = _finished(events)
    assert failed.status == "error"
    assert bad.status == "error" and "not a JSON object" in bad.result
    assert unknown.status == "denied" and "no tool named" in unknown.result
    assert isinstance(events[-1], Completed)


async def test_hostile_results_reach_events_and_store_unchanged(make: Make, server: FakeOpenAI):
    services = await make('allow = ["*"]')
    server.push(tool_calls=[("test__hostile", {})])
    events = await _ask(services)
    [done] = _finished(events)
    assert done.result == HOSTILE  # data: front ends show it through visible()
    reply = events[-1].message
    [stored] = services.store.tool_calls([reply.id])
    assert stored.result == HOSTILE


async def test_no_server_starts_for_a_model_without_tools(make: Make, server: FakeOpenAI):
    services = await make('allow = ["*"]', tools=False)
    events = await _ask(services)
    assert isinstance(events[-1], Completed)
    assert "tools" not in server.requests[0]
    toolbox = services.manager.tools
    assert toolbox is not None and toolbox.pool.started() == []
    assert toolbox.pool.links["test"].starts == 0


async def test_no_server_starts_when_none_is_enabled(make: Make, server: FakeOpenAI):
    services = await make("enabled = false")
    events = await _ask(services)
    assert isinstance(events[-1], Completed)
    assert "tools" not in server.requests[0]
    assert services.manager.tools is not None and not services.manager.tools.pool


async def test_grants_are_for_admins_and_checked(make: Make):
    services = await make()
    manager = services.manager
    admin = await manager.local_user()
    member = await manager.user("discord", "42", "m")
    from mschat.core.errors import InvalidInput, PermissionDenied

    with pytest.raises(PermissionDenied):
        await manager.change_tool_grants(member, member.id, add=["test/echo"])
    with pytest.raises(InvalidInput, match="SERVER/TOOL"):
        await manager.change_tool_grants(admin, member.id, add=["echo"])
    assert await manager.change_tool_grants(admin, member.id, add=["test/*", "test/*"]) == [
        "test/*"
    ]
    assert await manager.change_tool_grants(admin, member.id, remove=["test/*"]) == []
