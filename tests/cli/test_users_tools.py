"""``mschat users set --allow-tool / --revoke-tool``: per-user MCP tool grants."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from mschat.cli import cli
from mschat.core.services import build_services
from tests.conftest import write_config


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _member() -> int:
    async def make() -> int:
        services = build_services()
        try:
            return (await services.manager.user("discord", "4242", "member")).id
        finally:
            await services.aclose()

    return asyncio.run(make())


def test_an_admin_grants_and_revokes_tools_of_a_member(mschat_home: Path):
    write_config(mschat_home, "")
    assert run("users", "show").exit_code == 0  # the local user, an admin
    member = str(_member())

    granted = run("users", "set", member, "--allow-tool", "files/read", "--allow-tool", "web/*")
    assert granted.exit_code == 0, granted.output
    assert granted.stdout.splitlines()[-1] == "Tools granted: files/read, web/*"
    shown = json.loads(run("users", "show", member, "--json").stdout)
    assert shown["tool_grants"] == ["files/read", "web/*"]
    assert "tools granted: files/read, web/*" in run("users", "show", member).stdout

    revoked = run("users", "set", member, "--revoke-tool", "web/*")
    assert revoked.stdout.splitlines()[-1] == "Tools granted: files/read"

    bad = run("users", "set", member, "--allow-tool", "read")
    assert bad.exit_code == 1
    assert "SERVER/TOOL" in bad.output and "Traceback" not in bad.output
    local = run("users", "set", "--allow-tool", "files/read")
    assert local.exit_code == 1 and "[mcp.servers.NAME] allow" in local.output
