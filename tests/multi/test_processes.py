"""Rules that span instances, with four worker processes on one database (both backends):
the rate limit is counted atomically, and ids never repeat."""

from __future__ import annotations

from collections import Counter

import pytest

from mschat.core.services import Services
from tests.dbs import sql
from tests.multi.instances import run_workers

pytestmark = pytest.mark.backends


async def test_a_rate_limit_of_5_holds_for_4_processes_asking_10_at_once(services: Services):
    manager = services.manager
    admin = await manager.local_user()
    rita = await manager.user("api", "rita")
    await manager.update_user(admin, rita.id, rate_limit=5)
    before = services.store.table_counts()

    reports = await run_workers(services.config.db, *[["rita", "10"]] * 4)

    assert sum(len(report["sessions"]) for report in reports) == 5
    refused = sum((Counter(report["refused"]) for report in reports), Counter())
    assert refused == {"RateLimited": 35}
    questions = sql(
        services.store,
        "SELECT count(*) FROM messages WHERE author_id = ? AND role = 'user'",
        [rita.id],
    )
    assert questions == [(5,)]
    # a refused question left nothing behind: no session, no reply
    after = services.store.table_counts()
    assert after["sessions"] - before["sessions"] == 5
    assert after["messages"] - before["messages"] == 10


async def test_ids_never_repeat_when_4_processes_create_at_once(services: Services):
    before = services.store.table_counts()

    reports = await run_workers(
        services.config.db, *[[f"writer{number}", "10"] for number in range(4)]
    )

    sessions = [i for report in reports for i in report["sessions"]]
    messages = [i for report in reports for i in report["messages"]]
    assert not any(report["refused"] for report in reports)
    assert len(sessions) == len(set(sessions)) == 40
    assert len(messages) == len(set(messages)) == 80
    after = services.store.table_counts()
    assert after["sessions"] - before["sessions"] == 40
    assert after["messages"] - before["messages"] == 80
    stored = sql(services.store, "SELECT id FROM sessions WHERE id > 0")
    assert {row[0] for row in stored} >= set(sessions)
