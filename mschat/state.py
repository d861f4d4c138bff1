"""Remembered choices of one MSCHAT_HOME: small JSON values kept between runs.

The TUI's last session and theme, notices already shown, a server's model
list. Losing the file loses nothing that matters, so a missing or unreadable
file reads as empty and a failed write is ignored.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mschat.config import state_path
from mschat.files import write_private


class State:
    """A JSON object in ``state.json``, re-read on every access (several processes write it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_home(cls, env: Mapping[str, str] | None = None) -> State:
        """The state of the MSCHAT_HOME (or user data directory) in ``env``."""
        return cls(state_path(env))

    def __repr__(self) -> str:
        return f"<State {self.path}>"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, default: Any = None) -> Any:
        """The remembered value of ``key``."""
        return self._read().get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Remember ``value`` under ``key`` (None forgets it)."""
        data = self._read()
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        with contextlib.suppress(OSError):
            write_private(self.path, json.dumps(data, ensure_ascii=False, indent=1))
