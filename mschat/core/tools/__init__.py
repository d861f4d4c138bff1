"""MCP tools: servers from ``[mcp.servers.NAME]``, the policy, and the tool-call loop.

- ``policy.py``: who may run which tool (the one place of this rule);
- ``servers.py``: the pool of MCP servers, started lazily, one task each;
- ``results.py``: a tool's result as the text the model gets (cut to a budget);
- ``loop.py``: the rounds of one answer: ask the model, run the calls it asks
  for, give it the results, ask again;
- ``toolbox.py``: ``Toolbox``, what the answer pipeline asks for a question's loop.

Nothing here imports the ``mcp`` SDK at import time: a question that needs no
tools (and a cold ``mschat ask``) never loads it; the answer pipeline imports
only ``rounds.py`` until a ``Toolbox`` is built (a server is configured).
"""

from __future__ import annotations

#: the statuses of a finished tool call (``ToolCallFinished.status``, ``tool_calls.status``)
STATUSES = ("ok", "error", "denied", "timeout")
