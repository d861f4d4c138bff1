"""Messages that mention the bot are logged (kind ``mention``) with their outcome, shown by
``mschat logs interactions --kind mention`` and pruned after ``logs.retention_days``;
both backends, the real discord.py against the fake Discord."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

import pytest

from mschat.core.answer.turns import stamp
from mschat.discord.message_log import EXCERPT
from tests.conftest import eventually
from tests.dbs import sql
from tests.discord.conftest import Harness
from tests.fakes.fake_discord import GUILD_ID, OTHER_CHANNEL_ID, QA_CHANNEL_ID

pytestmark = pytest.mark.backends

DONE, FAILED = "👌", "❌"


async def mentions(h: Harness, count: int) -> list[dict[str, Any]]:
    """The ``count`` mention rows, oldest first, once all are written."""

    async def rows() -> list[dict[str, Any]] | None:
        found = await asyncio.to_thread(
            h.manager.store.list_log, "interactions", kind="mention", limit=100
        )
        return found[::-1] if len(found) >= count else None

    found = await eventually(rows)
    assert len(found) == count, found
    return [{**row, "payload": json.loads(row["payload"])} for row in found]


async def reacted(h: Harness, message: dict[str, Any], emoji: str) -> None:
    await h.fake.wait_until(lambda: emoji in h.fake.reactions.get(int(message["id"]), []))


async def test_a_guild_mention_and_a_dm_mention_are_logged_answered(h: Harness) -> None:
    user = await h.discord_user(1, status="new")
    guild = await h.fake.send_message(
        1, "what is <b>up</b>?", channel_id=OTHER_CHANNEL_ID, mention_bot=True
    )
    await reacted(h, guild, DONE)
    dm = await h.fake.send_message(1, "and here?", dm=True, mention_bot=True)
    await reacted(h, dm, DONE)
    plain_dm = await h.fake.send_message(1, "no mention", dm=True)
    await reacted(h, plain_dm, DONE)
    first, second = await mentions(h, 2)
    assert first["source"] == "discord" and first["name"] == "qa"
    assert first["user_id"] == user.id and first["user_name"] == "user1"
    assert (first["guild_id"], first["channel_id"]) == (str(GUILD_ID), str(OTHER_CHANNEL_ID))
    assert first["payload"] == {
        "message_id": guild["id"],
        "length": len("what is <b>up</b>?"),
        "excerpt": "what is <b>up</b>?",  # without the bot's mention
    }
    assert (first["status"], first["error"]) == ("ok", None)
    assert second["guild_id"] is None and second["channel_id"] == dm["channel_id"]
    assert second["payload"]["excerpt"] == "and here?" and second["status"] == "ok"
    # a DM that mentions no one is a plain message: logged once answered, without its text
    [row] = await eventually(
        lambda: asyncio.to_thread(h.manager.store.list_log, "interactions", kind="message")
    )
    assert json.loads(row["payload"]) == {"message_id": plain_dm["id"], "length": len("no mention")}


async def test_a_mention_of_the_bots_role_counts_everyone_does_not(h: Harness) -> None:
    await h.discord_user(1, status="new")
    everyone = await h.fake.send_message(
        1, "hear me", channel_id=OTHER_CHANNEL_ID, mention_everyone=True
    )
    role = await h.fake.send_message(1, "by role", channel_id=OTHER_CHANNEL_ID, mention_role=True)
    await reacted(h, role, DONE)
    [reply] = h.fake.replies_to(role["id"])
    assert reply["content"] == "Echo: by role"  # the role's mention is stripped too
    [row] = await mentions(h, 1)
    assert row["payload"]["message_id"] == role["id"] and row["status"] == "ok"
    assert not h.fake.replies_to(everyone["id"])


async def test_refused_mentions_are_logged_with_why(h: Harness) -> None:
    admin = await h.manager.local_user()
    await h.discord_user(1)  # disabled: the default
    ignored = await h.discord_user(2, status="new")
    await h.manager.update_user(admin, ignored.id, ignored=True)
    limited = await h.discord_user(3, status="new")
    await h.manager.update_user(admin, limited.id, rate_limit=1)
    await h.discord_user(4, status="new")

    disabled = await h.fake.send_message(1, "let me in", mention_bot=True)
    await h.fake.wait_until(lambda: h.fake.replies_to(disabled["id"]))  # the hint
    await h.fake.send_message(2, "secret words", mention_bot=True)
    await reacted(h, await h.fake.send_message(3, "first", mention_bot=True), DONE)
    await reacted(h, await h.fake.send_message(3, "second", mention_bot=True), FAILED)
    await h.fake.send_message(4, "", mention_bot=True)
    await h.fake.send_message(4, "x" * 5000, mention_bot=True)

    rows = await mentions(h, 6)
    by = {(r["user_name"], r["payload"]["length"]): r for r in rows}
    assert len(by) == 6
    off = by["user1", len("let me in")]
    assert off["status"] == "refused" and off["error"].startswith("user_disabled: ")
    assert off["payload"]["excerpt"] == "let me in"
    hidden = by["user2", len("secret words")]
    assert hidden["status"] == "refused" and hidden["error"].startswith("user_ignored: ")
    assert "excerpt" not in hidden["payload"]  # nothing an ignored user sends is stored
    assert "secret" not in json.dumps(hidden)
    assert by["user3", len("first")]["status"] == "ok"
    over = by["user3", len("second")]
    assert over["status"] == "refused" and over["error"].startswith("rate_limited: rate limit")
    bare = by["user4", 0]
    assert bare["status"] == "refused" and bare["error"].startswith("empty: ")
    long = by["user4", 5000]
    assert len(long["payload"]["excerpt"]) == EXCERPT and long["payload"]["excerpt"][-1] == "…"


async def test_mschat_logs_shows_mentions_and_pruning_removes_them(h: Harness, db_url: str) -> None:
    await h.discord_user(1, status="new")
    await reacted(h, await h.fake.send_message(1, "old one", mention_bot=True), DONE)
    await reacted(h, await h.fake.send_message(1, "new one", mention_bot=True), DONE)
    await reacted(h, await h.fake.send_message(1, "plain", channel_id=QA_CHANNEL_ID), DONE)
    await mentions(h, 2)

    async def logs(*args: str) -> str:
        # the command as an operator runs it, beside the running bot
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mschat",
            "--db",
            db_url,
            "logs",
            "interactions",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err
        return out.decode()

    lines = (await logs("--kind", "mention")).splitlines()
    assert lines[0].split()[-1] == "TEXT" and len(lines) == 3
    assert "new one" in lines[1] and "mention" in lines[1] and "old one" in lines[2]
    listed = json.loads(await logs("--kind", "mention", "--json"))
    assert [r["payload"]["excerpt"] for r in listed] == ["new one", "old one"]
    assert [r["kind"] for r in listed] == ["mention", "mention"]

    old = str(listed[1]["id"])
    sql(
        h.manager.store,
        "UPDATE interactions SET created = ? WHERE id = ?",
        [stamp(timedelta(days=-40)), int(old)],
    )
    assert (await h.manager.prune_logs(30))["interactions"] == 1
    after = json.loads(await logs("--kind", "mention", "--json"))
    assert [r["payload"]["excerpt"] for r in after] == ["new one"]
