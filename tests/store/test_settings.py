"""Live settings in the database (``Store.settings``): set, replaced, unset, and noticed."""

from __future__ import annotations

import time

from mschat.store import Store
from mschat.store.contract import Change
from tests.store.test_changes import stores

__all__ = ["stores"]  # the fixture: two stores on one database


def test_set_replace_unset(stores: tuple[Store, Store]) -> None:
    first, second = stores
    assert first.settings() == []
    first.set_setting("general.log_level", '"debug"', "tester")
    first.set_setting("defaults.rate_limit", "5", None)
    second.set_setting("general.log_level", '"error"', "admin")
    rows = {row.key: row for row in first.settings()}
    assert [key for key in rows] == ["defaults.rate_limit", "general.log_level"]
    assert rows["general.log_level"].value == '"error"'
    assert rows["general.log_level"].updated_by == "admin"
    assert rows["defaults.rate_limit"].updated
    assert second.unset_setting("general.log_level") is True
    assert second.unset_setting("general.log_level") is False
    assert [row.key for row in first.settings()] == ["defaults.rate_limit"]


def test_a_copied_setting_keeps_its_time_of_change(stores: tuple[Store, Store]) -> None:
    first, second = stores
    when = "2025-03-04T05:06:07.000008+00:00"
    first.set_setting("queue.size", "50", "alice", when)
    first.set_setting("queue.size", "60", "alice", when)  # replaced, time kept
    [row] = second.settings()
    assert (row.value, row.updated, row.updated_by) == ("60", when, "alice")


def test_a_setting_is_noticed_by_other_stores(stores: tuple[Store, Store]) -> None:
    first, second = stores
    feed = first.changes(0.02)
    try:
        second.set_setting("feedback.enabled", "false", None)
        deadline = time.monotonic() + 10
        got: list[Change] = []
        while not any(c.table in (None, "settings") for c in got):
            assert time.monotonic() < deadline, got
            got += feed.wait(deadline - time.monotonic())
        # a live settings change is no reason for a view to reload its sessions
        assert all(not c.concerns_session_list for c in got if c.table == "settings")
    finally:
        feed.close()
