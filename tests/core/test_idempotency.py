"""Idempotency keys in the core: the database decides who answers, across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mschat.core import idempotency
from mschat.core.idempotency import (
    Claim,
    IdempotencyKeys,
    KeyInUse,
    KeyReused,
    Outcome,
    fingerprint,
)
from mschat.store.sqlite import SQLiteStore as Store
from tests.conftest import eventually

DIGEST = fingerprint("POST /chat", {"message": "hi", "user": "u"})


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two connections to one database file, as two processes would have."""
    first = Store.open(tmp_path / "keys.db")
    first.create_user(kind="api", external_id="u", name="u", status="active")
    second = Store.open(tmp_path / "keys.db")
    yield first, second
    first.close()
    second.close()


def process(store: Store, owner: str) -> IdempotencyKeys:
    return IdempotencyKeys(store, asyncio.to_thread, owner=owner)


async def test_the_first_claims_others_wait_and_get_its_outcome(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
):
    found_running: list[str] = []
    for store, name in zip(stores, ("one", "two"), strict=True):
        original = store.claim_idempotency_key

        def spy(original=original, name=name, **values):  # type: ignore[no-untyped-def]
            claimed, row = original(**values)
            if not claimed and row["state"] == "running":
                found_running.append(name)
            return claimed, row

        monkeypatch.setattr(store, "claim_idempotency_key", spy)
    one, two = process(stores[0], "one"), process(stores[1], "two")
    claim = await one.claim(1, "k", "POST /chat", DIGEST)
    assert isinstance(claim, Claim)
    waiting = asyncio.create_task(two.claim(1, "k", "POST /chat", DIGEST))
    again_here = asyncio.create_task(one.claim(1, "k", "POST /chat", DIGEST))
    # both found the key running (in this process and in the other) and wait
    await eventually(lambda: {"one", "two"} <= set(found_running))
    assert not waiting.done() and not again_here.done()
    await claim.finish(Outcome(status=200, response='{"a": 1}', session_id=None))
    for outcome in await asyncio.gather(waiting, again_here):
        assert outcome == Outcome(status=200, response='{"a": 1}')


async def test_another_request_with_the_key_is_refused(stores: tuple[Store, Store]):
    keys = process(stores[0], "one")
    claim = await keys.claim(1, "k", "POST /chat", DIGEST)
    assert isinstance(claim, Claim)
    with pytest.raises(KeyReused):
        await keys.claim(1, "k", "POST /chat", fingerprint("POST /chat", {"message": "other"}))
    with pytest.raises(KeyReused):
        await keys.claim(1, "k", "POST /v1/chat/completions", DIGEST)
    with pytest.raises(KeyInUse):
        await keys.claim(1, "k", "POST /chat", DIGEST, wait=timedelta(milliseconds=50))
    await claim.release()
    assert isinstance(await keys.claim(1, "k", "POST /chat", DIGEST), Claim)


async def test_a_dead_holders_key_is_taken_over(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(idempotency, "LEASE", timedelta(milliseconds=200))
    dead, alive = process(stores[0], "dead"), process(stores[1], "alive")
    claim = await dead.claim(1, "k", "POST /chat", DIGEST)
    assert isinstance(claim, Claim)
    claim._renewer.cancel()  # its process stops: nobody renews the lease
    started = asyncio.get_running_loop().time()
    taken = await alive.claim(1, "k", "POST /chat", DIGEST)
    assert isinstance(taken, Claim)
    assert asyncio.get_running_loop().time() - started >= 0.1
    # the dead holder's late answer no longer counts
    await claim.finish(Outcome(status=200, response="late"))
    await taken.finish(Outcome(status=201, response="mine"))
    assert await dead.claim(1, "k", "POST /chat", DIGEST) == Outcome(201, "mine")


async def test_a_running_claim_is_renewed(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(idempotency, "LEASE", timedelta(milliseconds=150))
    holder, other = process(stores[0], "holder"), process(stores[1], "other")
    claim = await holder.claim(1, "k", "POST /chat", DIGEST)
    assert isinstance(claim, Claim)
    with pytest.raises(KeyInUse):  # three leases long, still held
        await other.claim(1, "k", "POST /chat", DIGEST, wait=timedelta(milliseconds=450))
    await claim.finish(Outcome(status=200, response="done"))


async def test_keys_are_forgotten_after_a_day(stores: tuple[Store, Store]):
    keys = process(stores[0], "one")
    claim = await keys.claim(1, "k", "POST /chat", DIGEST)
    assert isinstance(claim, Claim)
    await claim.finish(Outcome(status=200, response="old"))
    old = (datetime.now(UTC) - idempotency.KEY_TTL - timedelta(seconds=1)).isoformat()
    with stores[0].write() as conn:
        conn.execute("UPDATE idempotency_keys SET created = ?", [old])
    assert isinstance(await keys.claim(1, "k", "POST /chat", DIGEST), Claim)
    assert stores[0].conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0] == 1
