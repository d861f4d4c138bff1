"""httpx, imported without its command-line tool.

``import httpx`` also imports ``httpx._main`` (the ``httpx`` CLI), which pulls in
rich and pygments: measured here, 55 ms of a one-shot ``mschat ask``'s ~300 ms.
mschat never uses that CLI, so when httpx is not loaded yet a stand-in module
takes its place. Any other user of httpx in the process is unaffected (the
stand-in only replaces the CLI entry point).
"""

from __future__ import annotations

import sys
import types


def _cli_unavailable() -> None:
    raise SystemExit("the httpx command-line tool is not loaded inside mschat")


if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stub = types.ModuleType("httpx._main")
    _stub.main = _cli_unavailable  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stub

import httpx  # noqa: E402

__all__ = ["httpx"]
