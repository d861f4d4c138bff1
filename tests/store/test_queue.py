"""The queue of questions (``Store.enqueue`` / ``claim_queue``): slots, order, leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mschat.store import Store
from tests.store.test_changes import stores

__all__ = ["stores"]  # the fixture: two stores on one database


def at(seconds: float) -> str:
    """A fixed time plus ``seconds``, in the stored form."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return (base + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def users(store: Store, *names: str) -> list[int]:
    return [
        store.create_user(kind="local", external_id=n, name=n, status="active").id for n in names
    ]


def test_slots_priority_then_oldest_one_per_user(stores: tuple[Store, Store]) -> None:
    first, second = stores
    ann, bob, vip = users(first, "ann", "bob", "vip")
    a1 = first.enqueue(ann, "p", 0, at(0), at(60), None)
    a2 = second.enqueue(ann, "p", 0, at(1), at(60), None)
    b1 = first.enqueue(bob, "p", 0, at(2), at(60), None)
    v1 = second.enqueue(vip, "p", 5, at(3), at(60), None)
    other = first.enqueue(bob, "q", 0, at(4), at(60), None)
    # one slot: the priority user first, whatever the instance that claims
    assert second.claim_queue("p", 1, at(5), at(60)) == [v1]
    assert first.claim_queue("p", 1, at(5), at(60)) == []
    first.leave_queue(v1)  # type: ignore[arg-type]
    # then the oldest; ann's second question waits for her first
    assert first.claim_queue("p", 2, at(6), at(60)) == [a1, b1]
    assert second.queue_states([a1, a2, b1, v1]) == {  # type: ignore[list-item]
        a1: "running",
        a2: "waiting",
        b1: "running",
    }
    # bob's question for another provider waits for his running one
    assert second.claim_queue("q", None, at(6), at(60)) == []
    second.leave_queue(a1)  # type: ignore[arg-type]
    second.leave_queue(b1)  # type: ignore[arg-type]
    assert first.claim_queue("p", None, at(7), at(60)) == [a2]
    assert first.claim_queue("q", None, at(7), at(60)) == [other]
    status = second.queue_status(at(8))
    assert status.waiting == 0
    assert status.running == {"p": 1, "q": 1}


def test_full_queue_and_dead_holders(stores: tuple[Store, Store]) -> None:
    first, second = stores
    ann, bob, cat = users(first, "ann", "bob", "cat")
    a = first.enqueue(ann, "p", 0, at(0), at(10), 2)
    b = second.enqueue(bob, "p", 0, at(1), at(10), 2)
    assert a and b
    assert first.enqueue(cat, "p", 0, at(2), at(30), 2) is None  # full
    status = second.queue_status(at(3))
    assert (status.waiting, status.oldest) == (2, at(0))
    assert first.claim_queue("p", 1, at(3), at(10)) == [a]
    first.renew_queue([b], at(30))
    # ann's process died: her running entry's lease ends, its slot frees itself
    assert second.claim_queue("p", 1, at(11), at(40)) == [b]
    assert second.queue_states([a, b]) == {b: "running"}
    assert second.enqueue(cat, "p", 0, at(12), at(40), 1) is not None


def test_places_in_line_per_provider(stores: tuple[Store, Store]) -> None:
    first, second = stores
    ann, bob, cat, vip, dead = users(first, "ann", "bob", "cat", "vip", "dead")
    gone = first.enqueue(dead, "p", 0, at(0), at(5), None)  # its process died
    a = first.enqueue(ann, "p", 0, at(1), at(60), None)
    b = second.enqueue(bob, "p", 0, at(2), at(60), None)
    other = first.enqueue(cat, "q", 0, at(3), at(60), None)
    c = second.enqueue(cat, "p", 0, at(4), at(60), None)
    assert first.queue_places([], at(6)) == {}
    places = second.queue_places([a, b, c, other], at(6))  # type: ignore[list-item]
    assert places == {
        a: ("waiting", 1),
        b: ("waiting", 2),
        c: ("waiting", 3),
        other: ("waiting", 1),
    }
    v = second.enqueue(vip, "p", 5, at(7), at(60), None)
    assert first.claim_queue("p", 1, at(8), at(60)) == [v]
    assert first.queue_places([v, a, b, c, gone], at(8)) == {  # type: ignore[list-item]
        v: ("running", 0),
        a: ("waiting", 1),
        b: ("waiting", 2),
        c: ("waiting", 3),
    }
    first.leave_queue(a)  # type: ignore[arg-type]
    assert second.queue_places([b, c], at(9)) == {b: ("waiting", 1), c: ("waiting", 2)}  # type: ignore[list-item]
