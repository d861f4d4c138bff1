"""``mschat ops pause / resume / status``: answering paused for every instance, the queue shown."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from mschat.cli import cli
from mschat.core.answer.turns import stamp
from mschat.store import open_store


@pytest.mark.backends
def test_pause_status_resume(mschat_home: Path, db_url: str) -> None:
    runner = CliRunner()

    def ops(*args: str) -> str:
        result = runner.invoke(cli, ["--db", db_url, "ops", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert ops("status") == "paused: no\nwaiting: 0\nrunning: none\noldest wait: none\n"
    assert ops("pause") == 'paused: running answers finish; new questions get a "paused" reply\n'
    # what another instance left in the queue: one answer running, one question waiting
    store = open_store(db_url)
    try:
        ann, bob = (
            store.create_user(kind="api", external_id=n, name=n, status="active").id
            for n in ("ann", "bob")
        )
        lease = stamp(timedelta(minutes=1))
        store.enqueue(ann, "fake", 0, stamp(timedelta(seconds=-3)), lease, None)
        store.claim_queue("fake", 1, stamp(), lease)
        store.enqueue(bob, "fake", 0, stamp(timedelta(seconds=-2)), lease, None)
    finally:
        store.close()
    lines = ops("status").splitlines()
    assert lines[:3] == ["paused: yes (new questions: reject)", "waiting: 1", "running: fake 1"]
    assert lines[3].startswith("oldest wait: 2") and lines[3].endswith(" s")
    status = json.loads(ops("status", "--json"))
    assert (status["paused"], status["waiting"], status["running"]) == (True, 1, {"fake": 1})
    assert ops("resume") == "resumed\n"
    assert ops("status").startswith("paused: no\n")
    shown = runner.invoke(cli, ["--db", db_url, "config", "show", "--live", "--json"]).output
    [row] = [r for r in json.loads(shown) if r["key"] == "queue.paused"]
    assert (row["value"], row["source"]) == (False, "config")


def test_an_admin_gives_a_user_priority_in_the_queue(mschat_home: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "list"]).exit_code == 0  # the terminal user
    result = runner.invoke(cli, ["users", "set", "--priority", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.endswith(": priority\n")
    shown = runner.invoke(cli, ["users", "show", "--json"]).output
    assert json.loads(shown)["user"]["priority"] == 5
