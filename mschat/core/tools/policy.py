"""Who may run which tool: the one place of this rule.

For the terminal user (kind ``local``): a tool in the server's ``deny`` is
denied, one in ``allow`` runs, any other is asked about (the front end's
approval callback; without one it is denied, with a notice naming
``--allow-tool``). For Discord and API users: ``deny`` is denied; a tool runs
only if it is in ``remote_allow`` or granted to that user
(``mschat users set --allow-tool SERVER/TOOL``); any other is denied.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from mschat.config import McpServerConfig


class Decision(StrEnum):
    """What happens to one tool call."""

    RUN = "run"
    ASK = "ask"
    DENY = "deny"


def listed(names: Collection[str], tool: str) -> bool:
    """Whether ``tool`` is in a list of tool names (``"*"`` is every tool)."""
    return "*" in names or tool in names


def granted(grants: Collection[str], server: str, tool: str) -> bool:
    """Whether a user's grants (``SERVER/TOOL``, ``SERVER/*``) include this tool."""
    return f"{server}/{tool}" in grants or f"{server}/*" in grants


def decide(
    user_kind: str, server: McpServerConfig, tool: str, grants: Collection[str] = ()
) -> Decision:
    """The decision for a call of ``tool`` on ``server`` by a user of ``user_kind``."""
    if listed(server.deny, tool):
        return Decision.DENY
    if user_kind == "local":
        return Decision.RUN if listed(server.allow, tool) else Decision.ASK
    if listed(server.remote_allow, tool) or granted(grants, server.name, tool):
        return Decision.RUN
    return Decision.DENY


def not_available(server: str, tool: str) -> str:
    """What the model is told about a denied call."""
    return f"The tool {server}/{tool} is not available to this user; it was not run."


def confirm_notice(server: str, tool: str) -> str:
    """The asker's notice about a call that needed confirmation nobody could give."""
    return (
        f"tool {server}/{tool} needs confirmation; not run "
        f"(allow it with --allow-tool {server}/{tool}, or in [mcp.servers.{server}] allow)"
    )


def remote_notice(server: str, tool: str) -> str:
    """The asker's notice about a call their kind of user may not make."""
    return f"tool {server}/{tool} is not available to you; it was not run"


def check_grant(text: str) -> str:
    """A grant as ``SERVER/TOOL`` (``*`` for every tool), or ValueError saying the form."""
    server, slash, tool = text.strip().partition("/")
    if not slash or not server or not tool or "/" in tool:
        raise ValueError(f"a tool grant is SERVER/TOOL (or SERVER/*), got {text!r}")
    return f"{server}/{tool}"
