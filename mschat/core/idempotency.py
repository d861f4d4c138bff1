"""Answering a retried request once: the caller's idempotency keys.

A client that did not get its answer (a timeout, a dropped connection) sends the
same request again with the same key. The first request to claim a key runs; a
retry gets its recorded outcome, waiting while it still runs. The store's unique
(user, key) pair decides who claimed first, so processes sharing a database
agree. A claim is a lease its holder renews while it runs, so the key of a
process that died is taken over by the next retry. Keys are forgotten after a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mschat.core.answer.turns import Runner, new_owner
from mschat.core.errors import Busy, InvalidInput
from mschat.store.contract import Store

#: how long a key is remembered
KEY_TTL = timedelta(hours=24)
#: how long a claim lasts without renewal (a dead holder blocks its retries this long)
LEASE = timedelta(seconds=30)
#: how long a retry waits for the first request to finish
WAIT = timedelta(minutes=10)
FIRST_POLL = 0.02
MAX_POLL = 0.5


class KeyReused(InvalidInput):
    """The key was first sent with another request (another body or endpoint)."""

    code = "idempotency_key_reused"
    http_status = 422


class KeyInUse(Busy):
    """The first request sent with this key is still running after the wait."""

    code = "idempotency_key_in_use"
    http_status = 409


@dataclass(frozen=True, slots=True)
class Outcome:
    """The recorded answer to the first request sent with a key."""

    status: int
    response: str
    session_id: int | None = None
    message_id: int | None = None


def fingerprint(endpoint: str, request: Any) -> str:
    """A digest of a request (any JSON value): a key must come back with the same one."""
    text = json.dumps([endpoint, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


class Claim:
    """The right to answer the first request of a key; ``finish`` records the answer."""

    def __init__(self, keys: IdempotencyKeys, key_id: int) -> None:
        self.keys = keys
        self.key_id = key_id
        self.done = asyncio.Event()
        self._renewer = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        """Keep the lease while a long reply streams."""
        keys = self.keys
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            until = _stamp(datetime.now(UTC) + LEASE)
            await keys.run(keys.store.renew_idempotency_key, self.key_id, keys.owner, until)

    def _end(self) -> None:
        self._renewer.cancel()
        self.keys.claims.pop(self.key_id, None)
        self.done.set()

    async def finish(self, outcome: Outcome) -> None:
        """Record the answer: retries get it from now on."""
        keys = self.keys
        try:
            await keys.run(
                keys.store.finish_idempotency_key,
                self.key_id,
                keys.owner,
                status_code=outcome.status,
                response=outcome.response,
                session_id=outcome.session_id,
                message_id=outcome.message_id,
            )
        finally:
            self._end()

    async def release(self) -> None:
        """Nothing was stored: forget the key, so a retry runs the request again."""
        keys = self.keys
        try:
            await keys.run(keys.store.release_idempotency_key, self.key_id, keys.owner)
        finally:
            self._end()

    def release_now(self) -> None:
        """``release`` for a cancelled task, which can no longer await."""
        with contextlib.suppress(Exception):
            self.keys.store.release_idempotency_key(self.key_id, self.keys.owner)
        self._end()


class IdempotencyKeys:
    """Claims of idempotency keys by this process (one per process, like its leases)."""

    def __init__(self, store: Store, run: Runner, owner: str | None = None) -> None:
        self.store = store
        self.run = run
        self.owner = owner or new_owner()
        #: claims running in this process, so a retry here wakes as soon as they end
        self.claims: dict[int, Claim] = {}

    async def claim(
        self, user_id: int, key: str, endpoint: str, digest: str, *, wait: timedelta = WAIT
    ) -> Claim | Outcome:
        """Claim ``key`` for this request, or get the first request's outcome.

        While the first request runs (here or in another process) this waits for
        it. Raises KeyReused when the key came with another request, KeyInUse when
        the first one still runs after ``wait``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        poll = FIRST_POLL
        while True:
            now = datetime.now(UTC)
            claimed, row = await self.run(
                self.store.claim_idempotency_key,
                user_id=user_id,
                key=key,
                endpoint=endpoint,
                request_hash=digest,
                owner=self.owner,
                now=_stamp(now),
                until=_stamp(now + LEASE),
                expired=_stamp(now - KEY_TTL),
            )
            if claimed:
                claim = self.claims[row["id"]] = Claim(self, row["id"])
                return claim
            if row["endpoint"] != endpoint or row["request_hash"] != digest:
                raise KeyReused(
                    f"Idempotency-Key {key!r} was first sent with another request "
                    f"({row['endpoint']}, another body); use a new key for a new request"
                )
            if row["state"] == "done":
                return Outcome(
                    status=row["status_code"],
                    response=row["response"],
                    session_id=row["session_id"],
                    message_id=row["message_id"],
                )
            left = deadline - loop.time()
            if left <= 0:
                raise KeyInUse(
                    f"the request first sent with Idempotency-Key {key!r} is still running; "
                    "retry later"
                )
            running_here = self.claims.get(row["id"])
            if running_here is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(running_here.done.wait(), min(left, MAX_POLL))
            else:
                await asyncio.sleep(min(poll, left))
                poll = min(poll * 2, MAX_POLL)
