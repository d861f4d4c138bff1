"""The models an open provider's server lists, remembered for an hour.

A provider without a ``models`` list in the config ("open") offers what its
server's ``GET /models`` says. The answer is kept in memory and in the state
file of the MSCHAT_HOME (``models/NAME``: when, which server, the list), so a
one-shot ``mschat ask`` asks the server at most once an hour. A name missing
from a list more than a minute old asks again (a model pulled since); a failed
listing falls back to the last list known, and is not retried for a minute.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from mschat.core.errors import ProviderError
from mschat.state import State

log = logging.getLogger(__name__)

#: seconds a server's model list is used without asking again
MODEL_LIST_TTL = 3600.0
#: a name missing from a list at least this old asks the server again
MISS_REFRESH_AFTER = 60.0
#: seconds a failed listing is not tried again (a server that is down stays cheap)
RETRY_FAILED_AFTER = 60.0

Served = dict[str, int | None]


def server_digest(base_url: str) -> str:
    """Identifies the server a cached list came from, without storing its URL."""
    return hashlib.sha256(base_url.encode("utf-8", "replace")).hexdigest()[:16]


class ServedModels:
    """Per-provider model lists of servers: memory, then the state file, then the server."""

    def __init__(self, state: Callable[[], State], clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._clock = clock
        self._lists: dict[str, tuple[float, str, Served]] = {}
        self._failures: dict[str, tuple[float, ProviderError]] = {}

    def __repr__(self) -> str:
        return f"<ServedModels {sorted(self._lists)}>"

    def peek(self, provider: str) -> Served | None:
        """The list in memory, whatever its age (no I/O)."""
        entry = self._lists.get(provider)
        return entry[2] if entry else None

    def get(
        self,
        provider: str,
        base_url: str,
        fetch: Callable[[], Served],
        *,
        max_age: float = MODEL_LIST_TTL,
    ) -> Served:
        """The list of ``provider``'s server; asks it when the known one is older than ``max_age``.

        ``max_age=0`` always asks (a refresh), even right after a failure. Raises
        ``ProviderError`` only when the server cannot be asked and no list was
        ever known.
        """
        digest = server_digest(base_url)
        now = self._clock()
        known = self._known(provider, digest)
        if known is not None and now - known[0] <= max_age:
            return known[1]
        failed = self._failures.get(provider)
        if failed is None or now - failed[0] > RETRY_FAILED_AFTER or max_age <= 0:
            try:
                served = fetch()
            except ProviderError as error:
                self._failures[provider] = (now, error)
            else:
                self._failures.pop(provider, None)
                self._store(provider, digest, now, served)
                return served
        failure = self._failures[provider][1]
        if known is not None:
            age = now - known[0]
            log.info("%s: using the model list of %.0f s ago (%s)", provider, age, failure)
            return known[1]
        raise failure

    def _known(self, provider: str, digest: str) -> tuple[float, Served] | None:
        """The newest list of this server: in memory, else from the state file."""
        entry = self._lists.get(provider)
        if entry is not None and entry[1] == digest:
            return entry[0], entry[2]
        saved = self._state().get(f"models/{provider}")
        try:
            if saved["server"] == digest:
                at = float(saved["at"])
                models = saved["models"].items()
                served = {str(k): v if isinstance(v, int) else None for k, v in models}
                self._lists[provider] = (at, digest, served)
                return at, served
        except (TypeError, KeyError, ValueError, AttributeError):
            pass  # no list, or one written by something else: ask the server
        return None

    def _store(self, provider: str, digest: str, at: float, served: Served) -> None:
        self._lists[provider] = (at, digest, served)
        self._state().set(f"models/{provider}", {"server": digest, "at": at, "models": served})
