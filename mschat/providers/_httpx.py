"""httpx, imported without its command-line tool and with its request log redacted.

``import httpx`` also imports ``httpx._main`` (the ``httpx`` CLI), which pulls in
rich and pygments: measured here, 55 ms of a one-shot ``mschat ask``'s ~300 ms.
mschat never uses that CLI, so when httpx is not loaded yet a stand-in module
takes its place. Any other user of httpx in the process is unaffected (the
stand-in only replaces the CLI entry point).

httpx logs every request with its full URL at INFO (the bot and the API log at
INFO): a filter masks the credentials a base URL may carry (``?api_key=…``).
"""

from __future__ import annotations

import logging
import sys
import types

from mschat.redact import redact_text


def _cli_unavailable() -> None:
    raise SystemExit("the httpx command-line tool is not loaded inside mschat")


if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stub = types.ModuleType("httpx._main")
    _stub.main = _cli_unavailable  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stub

import httpx  # noqa: E402


class RedactURLs(logging.Filter):
    """Masks credentials in URLs of a logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with its URLs redacted; never drops a record."""
        record.msg, record.args = redact_text(record.getMessage()), ()
        return True


if not any(isinstance(f, RedactURLs) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(RedactURLs())

__all__ = ["httpx"]
