"""Tool calls in ``mschat ask``: which run without asking, and asking on the terminal.

The policy (``mschat.core.tools.policy``) decides which calls need the terminal
user's confirmation; this is how the CLI gives it: ``--allow-tool SERVER/TOOL``
(or ``SERVER/*``) says yes in advance, and with a terminal the user is asked on
it. Without a terminal and without ``--allow-tool``, no callback is given: the
core denies such calls, with a notice naming the option.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mschat.cli.spinner import Spinner
from mschat.visible import visible

if TYPE_CHECKING:
    from mschat.core.tools.loop import Approve, ToolRequest

#: how much of a call's arguments the question shows
SHOWN_ARGUMENTS = 300


def checked_tools(given: Sequence[str]) -> list[str]:
    """``--allow-tool`` values as ``SERVER/TOOL`` grants; ValueError names the form."""
    if not given:
        return []
    from mschat.core.tools.policy import check_grant  # only when tools are named

    return [check_grant(text) for text in given]


def tool_approval(allowed: Sequence[str], spinner: Spinner) -> Approve | None:
    """The approval callback of one ask, or None when nobody can approve anything."""
    terminal = sys.stderr.isatty()
    if not allowed and not terminal:
        return None

    async def approve(request: ToolRequest) -> bool:
        from mschat.core.tools.policy import granted

        if granted(allowed, request.server, request.tool):
            return True
        if not terminal:
            return False
        with spinner.paused():
            return await asyncio.to_thread(_ask, request)

    return approve


def _ask(request: ToolRequest) -> bool:
    """Ask on the controlling terminal whether the call may run (anything but y: no)."""
    arguments = visible(request.arguments, newlines=False)
    if len(arguments) > SHOWN_ARGUMENTS:
        arguments = arguments[:SHOWN_ARGUMENTS] + "…"
    question = f"Run tool {visible(request.name, newlines=False)} with {arguments}? [y/N] "
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            sys.stderr.write(question)
            sys.stderr.flush()
            answer = sys.stdin.readline()
        else:  # the prompt came on stdin: ask the controlling terminal
            with open("/dev/tty", "r+", encoding="utf-8", errors="replace") as tty:
                tty.write(question)
                tty.flush()
                answer = tty.readline()
    except OSError:
        return False
    return answer.strip().lower() in ("y", "yes")
