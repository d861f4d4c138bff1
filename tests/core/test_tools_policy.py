"""The tool policy, every path: the terminal user, Discord and API users, grants, "*"."""

from __future__ import annotations

import pytest

from mschat.config import McpServerConfig
from mschat.core.tools.policy import Decision, check_grant, decide
from mschat.core.tools.results import result_text, truncate

RUN, ASK, DENY = Decision.RUN, Decision.ASK, Decision.DENY


def server(**lists: list[str]) -> McpServerConfig:
    return McpServerConfig("fs", command="x", **lists)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lists", "tool", "local", "remote", "granted"),
    [
        ({}, "read", ASK, DENY, RUN),
        ({"allow": ["read"]}, "read", RUN, DENY, RUN),
        ({"allow": ["*"]}, "write", RUN, DENY, RUN),
        ({"deny": ["read"], "allow": ["*"], "remote_allow": ["*"]}, "read", DENY, DENY, DENY),
        ({"deny": ["*"]}, "read", DENY, DENY, DENY),
        ({"remote_allow": ["read"]}, "read", ASK, RUN, RUN),
        ({"remote_allow": ["*"]}, "list", ASK, RUN, RUN),
        ({"remote_allow": ["read"]}, "write", ASK, DENY, RUN),
    ],
)
def test_decisions(
    lists: dict[str, list[str]], tool: str, local: Decision, remote: Decision, granted: Decision
):
    config = server(**lists)
    assert decide("local", config, tool) is local
    for kind in ("discord", "api"):
        assert decide(kind, config, tool) is remote
        assert decide(kind, config, tool, {f"fs/{tool}"}) is granted
        assert decide(kind, config, tool, {"fs/*"}) is granted
        assert decide(kind, config, tool, {f"other/{tool}"}) is remote
    # grants are for remote users; the terminal user's rule is allow
    assert decide("local", config, tool, {f"fs/{tool}"}) is local


@pytest.mark.parametrize("text", ["read", "fs/", "/read", "fs/a/b", ""])
def test_a_grant_is_server_slash_tool(text: str):
    with pytest.raises(ValueError, match="SERVER/TOOL"):
        check_grant(text)
    assert check_grant(" fs/read ") == "fs/read"


def test_results_become_text_and_are_cut_with_a_marker():
    from mcp.types import CallToolResult, ImageContent, TextContent

    result = CallToolResult(
        content=[
            TextContent(type="text", text="a"),
            ImageContent(type="image", data="eA==", mime_type="image/png"),
        ]
    )
    assert result_text(result) == "a\n[image: image/png]"
    assert result_text(CallToolResult(content=[], structured_content={"n": 1})) == '{"n": 1}'
    assert truncate("abcdef", 10) == "abcdef"
    assert truncate("abcdef", 2) == "ab\n[… truncated: 4 more characters]"
