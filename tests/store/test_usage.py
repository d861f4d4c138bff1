"""Token totals of provider requests per user and model (what costs are computed from)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mschat.core.costs import Prices
from mschat.store import Store, open_store
from mschat.store.contract import UsageTotal

OLD = "2026-01-01T00:00:00.000000+00:00"
NEW = "2026-06-01T00:00:00.000000+00:00"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


def call(store: Store, user: int, session: int, model: str, **values: object) -> None:
    provider, _, name = model.partition("/")
    row = {"status": "ok", "started": NEW, **values}
    store.add_api_call(user_id=user, session_id=session, provider=provider, model=name, **row)


def test_totals_per_user_and_model_filtered_by_user_session_and_time(store: Store):
    ann = store.create_user(kind="api", external_id="ann", name="ann", status="active").id
    bob = store.create_user(kind="api", external_id="bob", name="bob", status="active").id
    s1 = store.create_session(creator_id=ann, title="one", origin="api").id
    s2 = store.create_session(creator_id=ann, title="two", origin="api").id
    s3 = store.create_session(creator_id=bob, title="three", origin="api").id
    call(store, ann, s1, "openai/gpt-4o", prompt_tokens=1000, completion_tokens=500)
    call(store, ann, s1, "openai/gpt-4o", prompt_tokens=2000, completion_tokens=100)
    call(store, ann, s2, "openai/gpt-4o-mini", prompt_tokens=10, completion_tokens=20)
    call(store, ann, s2, "openai/gpt-4o", prompt_tokens=5, completion_tokens=5, started=OLD)
    # failed without tokens: free; answered without tokens: unknown
    call(store, ann, s2, "local/llama", status="error")
    call(store, bob, s3, "local/llama", status="ok")
    call(store, bob, s3, "openai/gpt-4o", status="retry", http_status=429)

    mine = store.usage_totals(user_id=ann, since=NEW)
    assert mine == [
        UsageTotal(ann, "local", "llama", 1, 0, 0, 0),
        UsageTotal(ann, "openai", "gpt-4o", 2, 3000, 600, 0),
        UsageTotal(ann, "openai", "gpt-4o-mini", 1, 10, 20, 0),
    ]
    assert store.usage_totals(session_id=s2) == [
        UsageTotal(ann, "local", "llama", 1, 0, 0, 0),
        UsageTotal(ann, "openai", "gpt-4o", 1, 5, 5, 0),
        UsageTotal(ann, "openai", "gpt-4o-mini", 1, 10, 20, 0),
    ]
    everyone = store.usage_totals()
    assert {t.user_id for t in everyone} == {ann, bob}
    assert UsageTotal(bob, "local", "llama", 1, 0, 0, 1) in everyone

    prices = Prices({"local/llama": {"input": 0.0, "output": 0.0}})
    # gpt-4o at 2.50/10.00, gpt-4o-mini at 0.15/0.60 per million
    cost = Prices().of_usage(mine)
    assert cost.known and cost.amount == pytest.approx(
        (3000 * 2.5 + 600 * 10 + 10 * 0.15 + 20 * 0.6) / 1e6
    )
    per_user = Prices().per_user(everyone)
    assert not per_user[bob].known  # an answer without tokens has an unknown cost
    assert per_user[bob].text("USD") == "—"
    assert not prices.per_user(everyone)[bob].known  # even from a free model
    assert store.usage_totals(user_id=bob, since="2030-01-01T00:00:00+00:00") == []
