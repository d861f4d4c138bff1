"""MCP servers over stdio (``sys.executable``): a crash mid-call, a restart, and a cold
``mschat ask`` that starts no server it does not need."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mschat.config import load_config
from mschat.core.events import Completed, ToolCallFinished
from mschat.core.services import Services, build_services
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI, FakeOpenAIThread

pytestmark = pytest.mark.timeout(90)

#: the repository: ``-m tests.fakes.mcp_server`` runs from here
ROOT = Path(__file__).resolve().parents[2]


def server_table(marker: Path, policy: str = 'allow = ["*"]') -> str:
    """``[mcp.servers.test]`` running the test MCP server over stdio, marking each start."""
    args = json.dumps(["-m", "tests.fakes.mcp_server", "--marker", str(marker)])
    command = json.dumps(sys.executable)
    return f'[mcp.servers.test]\ncommand = {command}\nargs = {args}\ncwd = "{ROOT}"\n{policy}\n'


def starts(marker: Path) -> int:
    """How many times the stdio server was started."""
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.fixture
async def stdio(
    mschat_home: Path, db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Services, FakeOpenAI, Path]]:
    marker = tmp_path / "started"
    async with FakeOpenAI() as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["fake-model"]\n'
            "tools = true\n" + server_table(marker),
        )
        services = build_services(load_config(db=db_url))
        yield services, server, marker
        await services.aclose()


async def test_a_crash_mid_call_is_an_error_then_the_server_restarts(
    stdio: tuple[Services, FakeOpenAI, Path],
):
    services, server, marker = stdio
    me = await services.manager.local_user()
    server.push(tool_calls=[("test__crash", {})])
    events = [e async for e in services.manager.ask(me, "crash it", new_session=True)]
    [crashed] = [e for e in events if isinstance(e, ToolCallFinished)]
    assert crashed.status == "error" and "MCP server 'test' failed" in crashed.result
    assert isinstance(events[-1], Completed)  # the question did not fail
    assert starts(marker) == 1

    server.push(tool_calls=[("test__echo", {"text": "back"})])
    events = [e async for e in services.manager.ask(me, "again", new_session=True)]
    [echoed] = [e for e in events if isinstance(e, ToolCallFinished)]
    assert (echoed.status, echoed.result) == ("ok", "echo: back")
    assert starts(marker) == 2


async def test_a_server_that_cannot_start_leaves_the_question_answered(
    mschat_home: Path, db_url: str, tmp_path: Path
):
    async with FakeOpenAI() as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["fake-model"]\n'
            f'tools = true\n[mcp.servers.broken]\ncommand = "{tmp_path}/no-such-program"\n',
        )
        services = build_services(load_config(db=db_url))
        me = await services.manager.local_user()
        events = [e async for e in services.manager.ask(me, "hi", new_session=True)]
        await services.aclose()
    assert isinstance(events[-1], Completed)
    assert "tools" not in server.requests[0]


@pytest.fixture
def cold(mschat_home: Path, fake_thread: FakeOpenAIThread, tmp_path: Path):
    """A config whose model takes no tools, with a stdio MCP server configured."""
    marker = tmp_path / "started"

    def configure(tools: bool) -> tuple[dict[str, str], Path]:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{fake_thread.base_url}"\nmodels = ["fake-model"]\n'
            f"tools = {str(tools).lower()}\n" + server_table(marker, policy=""),
        )
        return {**os.environ, "MSCHAT_HOME": str(mschat_home)}, marker

    return configure


def test_a_cold_ask_that_needs_no_tools_starts_no_server_and_imports_no_mcp(cold):
    env, marker = cold(False)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mschat", "ask", "hi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Echo: hi")
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not {name for name in imported if name.split(".")[0] in ("mcp", "mcp_types")}
    assert starts(marker) == 0


def test_a_cold_ask_without_a_terminal_denies_a_call_needing_confirmation(
    cold, fake_thread: FakeOpenAIThread
):
    env, marker = cold(True)
    fake_thread.push(tool_calls=[("test__echo", {"text": "x"})])
    done = subprocess.run(
        [sys.executable, "-m", "mschat", "ask", "use the tool"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # nothing waited for a confirmation: the model was told the tool is not available
    assert "not available to this user" in done.stdout
    assert starts(marker) == 1
    # one line on stderr says so, and how to allow it
    assert (
        "[tool test/echo: denied; tool test/echo needs confirmation; not run "
        "(allow it with --allow-tool test/echo, or in [mcp.servers.test] allow)]"
    ) in done.stderr


def test_allow_tool_runs_a_call_without_asking(cold, fake_thread: FakeOpenAIThread):
    env, marker = cold(True)
    fake_thread.push(tool_calls=[("test__echo", {"text": "from the tool"})])
    done = subprocess.run(
        [sys.executable, "-m", "mschat", "ask", "--allow-tool", "test/*", "--json", "use it"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "from the tool" in done.stdout
    assert '"tool_calls": [{"server": "test", "tool": "echo", "status": "ok"' in done.stdout
    assert re.search(r"\[tool test/echo: ok in \d+ ms\]", done.stderr), done.stderr
    assert starts(marker) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "mschat", "ask", "--allow-tool", "echo", "hi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "a tool grant is SERVER/TOOL (or SERVER/*), got 'echo'" in bad.stderr


async def test_a_failing_server_is_reported_with_its_stderr_made_visible(
    mschat_home: Path, db_url: str, caplog: pytest.LogCaptureFixture
):
    script = "import sys; sys.stderr.write('\\x1b[2Jno config here'); sys.exit(2)"
    async with FakeOpenAI() as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["fake-model"]\n'
            f"tools = true\n[mcp.servers.broken]\ncommand = {json.dumps(sys.executable)}\n"
            f"args = {json.dumps(['-c', script])}\n"
            'env = { SECRET = "hunter2-very-secret" }\n',
        )
        services = build_services(load_config(db=db_url))
        me = await services.manager.local_user()
        with caplog.at_level("WARNING"):
            events = [e async for e in services.manager.ask(me, "hi", new_session=True)]
        await services.aclose()
    assert isinstance(events[-1], Completed)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "MCP server 'broken' failed" in logged
    assert "␛[2Jno config here" in logged and "\x1b" not in logged


@pytest.fixture
def http_server(tmp_path: Path):
    """The test MCP server over Streamable HTTP, in a process of its own."""
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.mcp_server", "--http", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:  # wait until it listens (a connection attempt, not a sleep)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(10)


async def test_a_streamable_http_server(mschat_home: Path, db_url: str, http_server: str):
    async with FakeOpenAI() as server:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "fake/fake-model"\n'
            f'[providers.fake]\nbase_url = "{server.base_url}"\nmodels = ["fake-model"]\n'
            f'tools = true\n[mcp.servers.web]\nurl = "{http_server}"\n'
            'headers = { Authorization = "Bearer t0ken" }\nallow = ["echo"]\n',
        )
        services = build_services(load_config(db=db_url))
        server.push(tool_calls=[("web__echo", {"text": "over http"})])
        me = await services.manager.local_user()
        events = [e async for e in services.manager.ask(me, "hi", new_session=True)]
        await services.aclose()
    [done] = [e for e in events if isinstance(e, ToolCallFinished)]
    assert (done.status, done.result) == ("ok", "echo: over http")


def test_services_used_from_a_second_event_loop_start_the_server_again(
    mschat_home: Path, fake_thread: FakeOpenAIThread, tmp_path: Path
):
    import asyncio

    marker = tmp_path / "started"
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        f'[providers.fake]\nbase_url = "{fake_thread.base_url}"\nmodels = ["fake-model"]\n'
        "tools = true\n" + server_table(marker),
    )
    services = build_services()

    async def ask(text: str) -> str:
        fake_thread.push(tool_calls=[("test__echo", {"text": text})])
        me = await services.manager.local_user()
        events = [e async for e in services.manager.ask(me, text, new_session=True)]
        [done] = [e for e in events if isinstance(e, ToolCallFinished)]
        return done.result

    assert asyncio.run(ask("one")) == "echo: one"
    assert asyncio.run(ask("two")) == "echo: two"
    assert starts(marker) == 2
    asyncio.run(services.aclose())


@pytest.mark.parametrize(("answer", "status"), [(b"y\n", "ok"), (b"\n", "denied")])
def test_on_a_terminal_the_user_is_asked(
    cold, fake_thread: FakeOpenAIThread, answer: bytes, status: str
):
    from tests.cli.terminal import Terminal, mschat

    env, marker = cold(True)
    fake_thread.push(tool_calls=[("test__echo", {"text": "\x1b[2Jhostile"})])
    terminal = Terminal(mschat("ask", "use the tool"), env)
    terminal.wait_for(lambda out: b"? [y/N] " in out)
    # the arguments are shown, their control characters made visible
    assert b"Run tool test/echo with" in terminal.output and b"\x1b[2J" not in terminal.output
    terminal.write(answer)
    code, out = terminal.finish()
    assert code == 0, out
    assert f"[tool test/echo: {status}".encode() in out
    assert starts(marker) == 1  # listing the tools started it; a denied call is not run
