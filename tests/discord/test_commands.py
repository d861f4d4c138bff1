"""/user, /session, "Session info" and every component, over the fake Discord."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mschat.providers.base import ModelInfo
from tests.conftest import eventually
from tests.discord.conftest import Harness, interaction_rows
from tests.fakes.fake_discord import EPHEMERAL, find_component, walk_components

DONE = "👌"


async def response(h: Harness, interaction: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The interaction's ``index``-th message once it is no longer "thinking"."""

    def ready() -> dict[str, Any] | None:
        messages = h.fake.interaction_messages(interaction)
        if len(messages) > index and not messages[index]["flags"] & 128:
            return messages[index]
        return None

    return await h.fake.wait_until(ready)  # type: ignore[no-any-return]


async def edited(h: Harness, message: dict[str, Any], count: int) -> dict[str, Any]:
    """``message`` after it has been edited ``count`` times in all."""
    mid = int(message["id"])
    await h.fake.wait_until(lambda: h.fake.edits.get(mid, 0) >= count)
    return h.fake.messages[mid]


def ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for c in walk_components(message)]


def label(message: dict[str, Any], custom_id: str) -> str:
    component = find_component(message, custom_id)
    assert component is not None, ids(message)
    return component["label"]


def options(message: dict[str, Any], custom_id: str) -> list[dict[str, Any]]:
    component = find_component(message, custom_id)
    assert component is not None, ids(message)
    return component["options"]


async def user_panel(h: Harness, discord_id: int, **opts: Any) -> dict[str, Any]:
    interaction = await h.fake.slash(discord_id, "user", opts or None)
    return await response(h, interaction)


async def chat(h: Harness, discord_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
    """Send a Q&A message and wait for the answer; returns the first reply."""
    msg = await h.fake.send_message(discord_id, text, **kwargs)
    await h.fake.wait_until(lambda: DONE in h.fake.reactions.get(int(msg["id"]), []))
    return h.fake.replies_to(msg["id"])[0]


# ---- /user ------------------------------------------------------------------------------


async def test_user_panel_shows_settings_and_components(h: Harness) -> None:
    user = await h.discord_user(1, status="new")
    await chat(h, 1, "a first question")
    interaction = await h.fake.slash(1, "user")
    panel = await response(h, interaction)
    # acknowledged with an ephemeral "thinking" defer
    [callback] = h.fake.callbacks(interaction)
    assert callback.body["type"] == 5 and callback.body["data"]["flags"] == EPHEMERAL
    assert panel["flags"] & EPHEMERAL
    text = panel["content"]
    for expected in (
        "user1",
        "Discord id `1`",
        "Status: **new**",
        "max_tokens 600",
        "temperature 0.8",
        "Created",
        "Updated",
        "Modified",
        "first question",
    ):
        assert expected in text
    uid = user.id
    assert ids(panel) == [
        f"mschat:user:{uid}:show_public",
        f"mschat:user:{uid}:attach",
        f"mschat:user:{uid}:clear",
        f"mschat:user:{uid}:model",
        f"mschat:user:{uid}:status",
        f"mschat:user:{uid}:session:0",
    ]
    assert all(len(cid) <= 100 for cid in ids(panel))
    rows = panel["components"]
    assert len(rows) <= 5 and all(len(row["components"]) <= 5 for row in rows)
    assert label(panel, f"mschat:user:{uid}:show_public") == "Show public: off"
    assert [o["value"] for o in options(panel, f"mschat:user:{uid}:status")] == [
        "new",
        "active",
        "disabled",
    ]
    assert {o["value"] for o in options(panel, f"mschat:user:{uid}:model")} >= {
        "fake/fake-model",
        "fake/other",
    }


async def test_user_options_are_validated_and_saved(h: Harness) -> None:
    panel = await user_panel(h, 1, system_msg="Be brief.", max_tokens=100, temperature=0.5)
    assert "Be brief." in panel["content"] and "max_tokens 100" in panel["content"]
    user = await h.discord_user(1)
    assert (user.system_msg, user.max_tokens, user.temperature) == ("Be brief.", 100, 0.5)
    for bad, message in (
        ({"temperature": 3.5}, "temperature must be from 0 to 2"),
        ({"max_tokens": 0}, "max_tokens must be from 1 to 4096"),
        ({"max_tokens": 999_999}, "max_tokens must be from 1 to 4096"),
    ):
        interaction = await h.fake.slash(1, "user", bad)
        reply = await response(h, interaction)
        assert message in reply["content"] and reply["flags"] & EPHEMERAL
    user = await h.discord_user(1)
    assert (user.max_tokens, user.temperature) == (100, 0.5)


async def test_toggles_and_selects_change_the_user(h: Harness) -> None:
    user = await h.discord_user(1)
    panel = await user_panel(h, 1)
    uid = user.id
    edits = 1
    for custom_id, values in (
        (f"mschat:user:{uid}:show_public", None),
        (f"mschat:user:{uid}:attach", None),
        (f"mschat:user:{uid}:status", ["new"]),
        (f"mschat:user:{uid}:model", ["fake/other"]),
    ):
        interaction = await h.fake.click(1, panel, custom_id, values)
        edits += 1
        panel = await edited(h, panel, edits)
        assert h.fake.callbacks(interaction)[0].body["type"] == 6  # deferred update
    assert label(panel, f"mschat:user:{uid}:show_public") == "Show public: on"
    assert label(panel, f"mschat:user:{uid}:attach") == "Attach: on"
    assert "Status: **new**" in panel["content"]
    assert "`fake/other`" in panel["content"]
    user = await h.discord_user(1)
    assert (user.show_public, user.attach, user.status, user.model) == (
        True,
        True,
        "new",
        "fake/other",
    )
    # attach on + new: the next message's session becomes current
    await chat(h, 1, "now attached")
    user = await h.discord_user(1)
    assert user.status == "active" and user.current_session_id is not None
    session = await h.manager.get_session(user, user.current_session_id)
    assert session.model == "fake/other"


async def test_session_select_pages_past_25_and_attaches(h: Harness) -> None:
    user = await h.discord_user(1)
    made = [
        await h.manager.create_session(user, origin="discord_guild", title=f"topic {i}")
        for i in range(30)
    ]
    panel = await user_panel(h, 1)
    uid = user.id
    assert len(options(panel, f"mschat:user:{uid}:session:0")) == 25
    assert "page 1/2" in panel["content"]
    next_id = f"mschat:user:{uid}:page:1-next"
    assert find_component(panel, f"mschat:user:{uid}:page:0-prev")["disabled"]
    await h.fake.click(1, panel, next_id)
    panel = await edited(h, panel, 2)
    page2 = options(panel, f"mschat:user:{uid}:session:1")
    assert len(page2) == 5
    assert find_component(panel, next_id.replace("1-next", "1-next")) is not None
    chosen = int(page2[0]["value"])
    assert chosen in {s.id for s in made}
    interaction = await h.fake.click(1, panel, f"mschat:user:{uid}:session:1", [str(chosen)])
    info = await response(h, interaction)  # the session's information, privately
    assert info["flags"] & EPHEMERAL and f"Session #{chosen}" in info["content"]
    panel = await edited(h, panel, 3)
    assert "Status: **active**" in panel["content"]
    user = await h.discord_user(1)
    assert user.current_session_id == chosen and user.status == "active"
    # the next plain message goes into the chosen session
    await chat(h, 1, "continue here")
    assert (await h.manager.get_session(user, chosen)).message_count == 2


async def test_public_sessions_of_others_are_listed_with_show_public(h: Harness) -> None:
    await h.discord_user(1, status="new")
    await chat(h, 1, "shared topic")  # public: asked in a guild channel
    await chat(h, 1, "my secret", dm=True)  # private
    other = await h.discord_user(2, show_public=True)
    panel = await user_panel(h, 2)
    titles = [o["label"] for o in options(panel, f"mschat:user:{other.id}:session:0")]
    assert any("shared topic" in t for t in titles)
    assert not any("secret" in t for t in titles)


async def test_a_private_session_of_another_user_is_refused(h: Harness) -> None:
    await h.discord_user(1, status="new")
    reply = await chat(h, 1, "private thoughts", dm=True)
    owner = await h.discord_user(1)
    [private] = await h.manager.list_sessions(owner)
    other = await h.discord_user(2, show_public=True)
    await chat(h, 1, "something public")
    panel = await user_panel(h, 2)
    # a forged selection of the private session id
    interaction = await h.fake.click(
        2, panel, f"mschat:user:{other.id}:session:0", [str(private.id)]
    )
    refusal = await response(h, interaction)
    assert refusal["flags"] & EPHEMERAL and "private" in refusal["content"]
    assert (await h.discord_user(2)).current_session_id is None
    [row] = await eventually(
        lambda: interaction_rows(h, "name = 'user:session' AND status = 'refused'")
    )
    assert "private" in row["error"]
    # "Session info" on the private reply is refused too
    interaction = await h.fake.message_command(2, "Session info", reply)
    answer = await response(h, interaction)
    assert "private session of another user" in answer["content"]
    assert "private thoughts" not in answer["content"]


async def test_someone_elses_panel_buttons_are_refused(h: Harness) -> None:
    owner = await h.discord_user(1)
    panel = await user_panel(h, 1)
    interaction = await h.fake.click(2, panel, f"mschat:user:{owner.id}:attach")
    refusal = await response(h, interaction)
    assert "another user's panel" in refusal["content"]
    assert not (await h.discord_user(1)).attach


async def test_clear_asks_then_removes_only_own_sessions(h: Harness) -> None:
    await h.discord_user(1, status="new")
    await h.discord_user(2, status="new")
    await chat(h, 1, "one")
    await chat(h, 1, "two")
    await chat(h, 2, "theirs")
    user = await h.discord_user(1)
    panel = await user_panel(h, 1)
    interaction = await h.fake.click(1, panel, f"mschat:user:{user.id}:clear")
    confirm = await response(h, interaction)
    assert "Remove all 2 of your sessions" in confirm["content"] and confirm["flags"] & EPHEMERAL
    assert await h.manager.count_sessions(user) == 2  # nothing removed yet
    cancel = await h.fake.click(1, confirm, f"mschat:user:{user.id}:clear:no")
    confirm = await edited(h, confirm, 1)
    assert "Nothing was removed" in confirm["content"] and not confirm["components"]
    assert h.fake.callbacks(cancel)
    interaction = await h.fake.click(1, panel, f"mschat:user:{user.id}:clear")
    confirm = await response(h, interaction)
    await h.fake.click(1, confirm, f"mschat:user:{user.id}:clear:yes")
    confirm = await edited(h, confirm, 1)
    assert "Removed 2 session(s)" in confirm["content"]
    assert await h.manager.count_sessions(user) == 0
    assert await h.manager.count_sessions(await h.discord_user(2)) == 1


# ---- /session ---------------------------------------------------------------------------


async def test_session_without_current_session(h: Harness) -> None:
    interaction = await h.fake.slash(1, "session")
    reply = await response(h, interaction)
    assert "no current session" in reply["content"]


async def test_session_panel_rename_and_system_message(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    await chat(h, 1, "How do ducks fly?")
    user = await h.discord_user(1)
    sid = user.current_session_id
    interaction = await h.fake.slash(1, "session", {"name": "Ducks", "system_msg": "Be a bird."})
    panel = await response(h, interaction)
    text = panel["content"]
    for expected in (
        f"Session #{sid}: Ducks",
        "Creator: user1",
        "fake/fake-model",
        "Visibility: **public**",
        "Be a bird.",
        "How do ducks fly?",
        "Echo: How do ducks fly?",
        "Last 2 of 2 turns",
    ):
        assert expected in text
    assert not panel["attachments"]
    assert ids(panel) == [
        f"mschat:session:{sid}:public",
        f"mschat:session:{sid}:remove",
        f"mschat:session:{sid}:model",
    ]
    session = await h.manager.get_session(user, sid)
    assert (session.title, session.system_msg) == ("Ducks", "Be a bird.")


async def test_long_session_attaches_the_transcript(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    h.provider.push(chunks=["long answer " * 200])
    await chat(h, 1, "first")
    for i in range(6):
        h.provider.push(chunks=[f"answer {i} " * 50])
        await chat(h, 1, f"question {i}")
    interaction = await h.fake.slash(1, "session")
    panel = await response(h, interaction)
    assert len(panel["content"]) <= 2000
    assert "full transcript is attached" in panel["content"]
    [attachment] = panel["attachments"]
    sid = (await h.discord_user(1)).current_session_id
    assert attachment["filename"] == f"session-{sid}.md"
    transcript = h.fake.files[int(panel["id"])][f"session-{sid}.md"].decode()
    assert transcript.count("long answer") == 200 and "question 5" in transcript


async def test_creator_only_session_components(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    await chat(h, 1, "shared session")
    owner = await h.discord_user(1)
    sid = owner.current_session_id
    other = await h.discord_user(2, status="active")
    await h.manager.switch_session(other, sid)
    # the other user sees the panel of the public session they joined …
    interaction = await h.fake.slash(2, "session")
    panel = await response(h, interaction)
    assert f"Session #{sid}" in panel["content"]
    # … but may not change it
    for custom_id, values in (
        (f"mschat:session:{sid}:public", None),
        (f"mschat:session:{sid}:model", ["fake/other"]),
        (f"mschat:session:{sid}:remove", None),
    ):
        interaction = await h.fake.click(2, panel, custom_id, values)
        refusal = await response(h, interaction)
        assert refusal["flags"] & EPHEMERAL
        assert "Only the creator" in refusal["content"] and "user1" in refusal["content"]
    interaction = await h.fake.slash(2, "session", {"name": "hijacked"})
    assert "Only the creator" in (await response(h, interaction))["content"]
    session = await h.manager.get_session(owner, sid)
    assert session.public and session.model == "fake/fake-model" and session.title != "hijacked"
    refused = await interaction_rows(h, "status = 'refused'")
    assert len(refused) == 4


async def test_creator_changes_and_removes_the_session(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    await chat(h, 1, "my session")
    owner = await h.discord_user(1)
    sid = owner.current_session_id
    panel = await response(h, await h.fake.slash(1, "session"))
    await h.fake.click(1, panel, f"mschat:session:{sid}:public")
    panel = await edited(h, panel, 2)
    assert "Visibility: **private**" in panel["content"]
    assert label(panel, f"mschat:session:{sid}:public") == "Public: off"
    await h.fake.click(1, panel, f"mschat:session:{sid}:model", ["fake/other"])
    panel = await edited(h, panel, 3)
    assert "`fake/other`" in panel["content"]
    interaction = await h.fake.click(1, panel, f"mschat:session:{sid}:remove")
    confirm = await response(h, interaction)
    assert "cannot be undone" in confirm["content"]
    await h.fake.click(1, confirm, f"mschat:session:{sid}:remove:yes")
    confirm = await edited(h, confirm, 1)
    assert f"Session #{sid} was removed" in confirm["content"]
    assert await h.manager.count_sessions(owner) == 0


# ---- message command, logging, acknowledgement --------------------------------------------


async def test_session_info_on_a_reply(h: Harness) -> None:
    await h.discord_user(1, status="new")
    reply = await chat(h, 1, "what is a session?")
    interaction = await h.fake.message_command(3, "Session info", reply)
    info = await response(h, interaction)
    assert info["flags"] & EPHEMERAL
    assert "what is a session?" in info["content"] and "Creator: user1" in info["content"]
    user_msg = next(m for m in h.fake.messages.values() if m["content"] == "what is a session?")
    interaction = await h.fake.message_command(3, "Session info", user_msg)
    assert "Session #" in (await response(h, interaction))["content"]
    interaction = await h.fake.message_command(3, "Session info", await_hint(h))
    assert "not an mschat reply" in (await response(h, interaction))["content"]


def await_hint(h: Harness) -> dict[str, Any]:
    """Any bot message that is not an answer (the fake's first bot message will do)."""
    message = {
        "id": str(h.fake.new_id()),
        "channel_id": "900000000000000010",
        "author": h.fake.bot_user,
        "content": "hello",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
    }
    return message


async def test_every_interaction_is_deferred_before_the_store_and_logged(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    original = h.manager.user

    async def user(kind: str, external_id: str, name: str | None = None) -> Any:
        token = h.fake.calls and [c for c in h.fake.calls if "/callback" in c.path]
        seen.append(
            bool(token) and any(c.path.startswith(f"/interactions/{last['id']}/") for c in token)
        )
        return await original(kind, external_id, name)

    last: dict[str, Any] = {}
    monkeypatch.setattr(h.manager, "user", user)
    last.update(await h.fake.slash(1, "user"))
    panel = await response(h, last)
    last.update(
        await h.fake.click(1, panel, str(find_component(panel, ids(panel)[0])["custom_id"]))
    )
    await edited(h, panel, 2)
    assert seen == [True, True]

    async def two_rows() -> list:
        rows = await interaction_rows(h)
        return rows if len(rows) == 2 and all(r["status"] == "ok" for r in rows) else []

    rows = await eventually(two_rows)
    assert [(r["kind"], r["name"]) for r in rows] == [
        ("slash_command", "user"),
        ("component", "user:show_public"),
    ]
    assert all(r["source"] == "discord" and r["user_id"] for r in rows)


async def test_concurrent_commands_do_not_block_each_other(h: Harness) -> None:
    interactions = await asyncio.gather(*(h.fake.slash(uid, "user") for uid in range(1, 11)))
    panels = [await response(h, i) for i in interactions]
    assert all("Status: **disabled**" in p["content"] for p in panels)


async def test_feedback_buttons_under_an_answer(h: Harness) -> None:
    await h.discord_user(1, status="new")
    reply = await chat(h, 1, "rate me")
    reply = h.fake.messages[int(reply["id"])]
    _, stored = await h.manager.find_by_ref(await h.discord_user(1), reply["id"])
    rid = stored.id
    assert ids(reply) == [
        f"mschat:message:{rid}:fb:{k}" for k in ("good", "outdated", "inaccurate", "other")
    ]
    interaction = await h.fake.click(2, reply, f"mschat:message:{rid}:fb:good")
    thanks = await response(h, interaction)
    assert "feedback (good)" in thanks["content"] and thanks["flags"] & EPHEMERAL
    interaction = await h.fake.click(3, reply, f"mschat:message:{rid}:fb:other")
    await h.fake.wait_until(lambda: h.fake.callbacks(interaction))
    [callback] = h.fake.callbacks(interaction)
    assert callback.body["type"] == 9  # a modal asks for the text
    assert callback.body["data"]["custom_id"] == f"mschat:fbtext:{rid}"
    submitted = await h.fake.submit_modal(3, f"mschat:fbtext:{rid}", {"text": "too short"})
    assert "feedback was recorded" in (await response(h, submitted))["content"]
    rows = await h.manager._run(
        lambda: list(h.manager.store.db.query("SELECT kind, text FROM feedback ORDER BY id"))
    )
    assert rows == [{"kind": "good", "text": None}, {"kind": "other", "text": "too short"}]


# ---- models: the core's one list, strict names --------------------------------------------


async def test_model_selects_offer_the_cores_list_of_usable_models(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = [
        ModelInfo(name="fake/fake-model", provider="fake", model="fake-model"),
        ModelInfo(name="fake/discovered", provider="fake", model="discovered"),
    ]

    async def list_models(*, refresh: bool = False) -> list[ModelInfo]:
        return listed

    monkeypatch.setattr(h.manager, "list_models", list_models)
    await h.discord_user(1, status="new", attach=True)
    await chat(h, 1, "a session")
    user = await h.discord_user(1)
    panel = await user_panel(h, 1)
    offered = [o["value"] for o in options(panel, f"mschat:user:{user.id}:model")]
    assert offered == ["fake/discovered", "fake/fake-model"]
    session_panel = await response(h, await h.fake.slash(1, "session"))
    sid = user.current_session_id
    offered = [o["value"] for o in options(session_panel, f"mschat:session:{sid}:model")]
    assert offered == ["fake/discovered", "fake/fake-model"]


async def test_an_unknown_model_name_is_a_clear_private_error(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    await chat(h, 1, "a session")
    user = await h.discord_user(1)
    sid = user.current_session_id
    panel = await user_panel(h, 1)
    # a forged (or since removed) model name in either select
    interaction = await h.fake.click(1, panel, f"mschat:user:{user.id}:model", ["nowhere/none"])
    error = await response(h, interaction)
    assert error["flags"] & EPHEMERAL
    assert "Unknown model `nowhere/none`: pick one from the list." in error["content"]
    session_panel = await response(h, await h.fake.slash(1, "session"))
    interaction = await h.fake.click(
        1, session_panel, f"mschat:session:{sid}:model", ["nowhere/none"]
    )
    error = await response(h, interaction)
    assert error["flags"] & EPHEMERAL and "Unknown model `nowhere/none`" in error["content"]
    assert (await h.discord_user(1)).model is None
    assert (await h.manager.get_session(user, sid)).model == "fake/fake-model"


# ---- refusals and pings -------------------------------------------------------------------


async def test_panels_with_hostile_titles_ping_no_one(h: Harness) -> None:
    await h.discord_user(1, status="new", attach=True)
    await chat(h, 1, "a session")
    pings = "@everyone @here <@12345> <@&999>"
    interaction = await h.fake.slash(1, "session", {"name": pings, "system_msg": pings})
    panel = await response(h, interaction)
    assert "@everyone" in panel["content"]
    sends = [
        c
        for c in h.fake.calls
        if c.method in ("POST", "PATCH") and isinstance(c.body, dict) and "content" in c.body
    ]
    assert any(c.path.startswith("/webhooks/") for c in sends)
    for call in sends:
        mentions = call.body["allowed_mentions"]
        assert mentions["parse"] == [] and not mentions.get("users") and not mentions.get("roles")


async def test_user_panel_shows_what_the_answers_cost(h: Harness) -> None:
    # a price for the scripted model (before the manager first reads the table)
    h.manager.registry.config.prices["fake/fake-model"] = {"input": 1e6, "output": 1e6}
    await h.discord_user(1, status="new")
    before = (await user_panel(h, 1))["content"]
    assert "Cost: 0.00 USD in the last 30 days (0 requests) · 0.00 USD in all" in before
    await chat(h, 1, "a question")
    [call] = await h.manager._run(h.manager.store.usage_totals)
    spent = call.tokens_in + call.tokens_out
    after = (await user_panel(h, 1))["content"]
    line = f"Cost: {spent:.4f} USD in the last 30 days (1 requests) · {spent:.4f} USD in all"
    assert line in after


async def test_user_panel_cost_of_an_unpriced_model_is_unknown(h: Harness) -> None:
    await h.discord_user(1, status="new")
    await chat(h, 1, "a question")
    text = (await user_panel(h, 1))["content"]
    assert "Cost: — in the last 30 days (1 requests) · — in all" in text
