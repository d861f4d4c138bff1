"""Interactions as signed HTTP POSTs (an "Interactions Endpoint URL"), without a gateway."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nacl.signing import SigningKey

from mschat.config import load_config
from mschat.core.errors import ConfigError
from mschat.core.services import Services
from mschat.discord.bot import MschatBot, configure_endpoints, make_bot, serve
from mschat.discord.interactions import MAX_BODY, MAX_SKEW, Endpoint, check_endpoint_config
from tests.conftest import eventually
from tests.discord.conftest import Harness, interaction_rows
from tests.fakes.fake_discord import EPHEMERAL, FakeDiscord, walk_components
from tests.fakes.scripted_provider import ScriptedProvider

LOADING = 1 << 7
#: digits int() takes but Discord never sends
WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.fixture
def key() -> SigningKey:
    """The application's key pair, made for this test."""
    return SigningKey.generate()


async def start_http_bot(
    fake: FakeDiscord, services: Services, key: SigningKey, *, gateway: bool = False
) -> tuple[MschatBot, Endpoint, asyncio.Task[None], asyncio.Event]:
    """A bot serving the interactions endpoint on an ephemeral port (no gateway by default)."""
    configure_endpoints(fake.api_base, fake.gateway_url)
    bot = make_bot(services, guild_ids=[], qa_channels=[], edit_interval=0.05)
    endpoint = Endpoint(bot, "127.0.0.1:0", key.verify_key.encode().hex())
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(bot, fake.token, stop=stop, grace=2.0, endpoint=endpoint, gateway=gateway)
    )
    await eventually(lambda: endpoint.url or task.done())
    if task.done():
        task.result()  # raise the startup error
    return bot, endpoint, task, stop


@pytest.fixture
async def http(
    fake: FakeDiscord, services: Services, provider: ScriptedProvider, key: SigningKey
) -> AsyncIterator[Harness]:
    """A bot reached only through its interactions endpoint, which the fake POSTs to."""
    bot, endpoint, task, stop = await start_http_bot(fake, services, key)
    fake.deliver_over_http([endpoint.url + "/interactions"], key)
    yield Harness(fake, bot, services, provider, task, stop)
    stop.set()
    await asyncio.wait_for(task, 10)


def url(h: Harness) -> str:
    return h.fake.endpoints[0]


def ping(**extra: Any) -> bytes:
    return json.dumps({"type": 1, "id": "1", "token": "t", "application_id": "2", **extra}).encode()


async def reply_of(h: Harness, interaction: dict[str, Any]) -> dict[str, Any]:
    """The interaction's first message once it is no longer "thinking"."""

    def ready() -> dict[str, Any] | None:
        messages = h.fake.interaction_messages(interaction)
        if messages and not messages[0]["flags"] & LOADING:
            return messages[0]
        return None

    return await h.fake.wait_until(ready)  # type: ignore[no-any-return]


# ---- the signature ----------------------------------------------------------------------


async def test_ping_is_answered_with_pong(http: Harness) -> None:
    status, body = await http.fake.post_signed(url(http), ping())
    assert (status, json.loads(body)) == (200, {"type": 1})
    assert not http.fake.calls_to("POST", "/interactions/")  # no callback: the body is the answer


async def test_requests_not_signed_by_the_application_are_refused(
    http: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake, body = http.fake, ping()
    now = int(time.time())
    other = SigningKey.generate()
    good = fake.signed_headers(body)
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "another key": (body, fake.signed_headers(body, key=other)),
        "no headers": (body, {"Content-Type": "application/json"}),
        "no timestamp": (body, {"X-Signature-Ed25519": good["X-Signature-Ed25519"]}),
        "tampered body": (ping(type=2), good),
        "stale": (body, fake.signed_headers(body, timestamp=now - MAX_SKEW - 5)),
        "from the future": (body, fake.signed_headers(body, timestamp=now + MAX_SKEW + 5)),
        "signature not hex": (body, {**good, "X-Signature-Ed25519": "zz" * 64}),
        "short signature": (body, {**good, "X-Signature-Ed25519": "ab" * 10}),
        "timestamp not a number": (body, {**good, "X-Signature-Timestamp": "12.5"}),
        "wide digits": (body, {**good, "X-Signature-Timestamp": str(now).translate(WIDE)}),
        "huge timestamp": (body, {**good, "X-Signature-Timestamp": "9" * 5000}),
    }
    for case, (sent, headers) in cases.items():
        status, answer = await fake.post_signed(url(http), sent, headers)
        assert status == 401, case
        assert "error" in json.loads(answer), case
    # a signed request within the allowed skew is taken
    fresh = fake.signed_headers(body, timestamp=now - MAX_SKEW + 30)
    assert (await fake.post_signed(url(http), body, fresh))[0] == 200
    assert "Traceback" not in caplog.text


async def test_hostile_bodies_get_one_clear_status(
    http: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = http.fake
    for body in (b"not json", b"[1, 2]", b'"text"', b'{"type": "x", "id": "1"}', b'{"id": 1}'):
        status, answer = await fake.post_signed(url(http), body)
        assert status == 400, body
        assert json.loads(answer) == {"error": "not an interaction"}
    too_big = b" " * (MAX_BODY + 1)
    assert (await fake.post_signed(url(http), too_big))[0] == 413
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url(http)) as response:
        assert response.status == 405
    assert "Traceback" not in caplog.text


# ---- commands and buttons run the gateway's code ------------------------------------------


async def test_user_panel_and_its_buttons_over_http(http: Harness) -> None:
    fake = http.fake
    user = await http.discord_user(1)
    interaction = await fake.slash(1, "user")
    # the initial response went to the callback endpoint; the POST got 202, no body
    assert fake.endpoint_answers[interaction["id"]][1:] == (202, b"")
    [callback] = fake.callbacks(interaction)
    assert callback.body["type"] == 5 and callback.body["data"]["flags"] == EPHEMERAL
    panel = await reply_of(http, interaction)
    assert "Discord id `1`" in panel["content"] and "Status: **disabled**" in panel["content"]
    status_select = f"mschat:user:{user.id}:status"
    assert status_select in [c["custom_id"] for c in walk_components(panel)]

    click = await fake.click(1, panel, status_select, ["new"])
    assert fake.endpoint_answers[click["id"]][1:] == (202, b"")
    assert fake.callbacks(click)[0].body["type"] == 6  # a deferred update, as from the gateway
    await fake.wait_until(lambda: "Status: **new**" in fake.messages[int(panel["id"])]["content"])
    assert (await http.discord_user(1)).status == "new"
    rows = await eventually(lambda: interaction_rows(http, "status = 'ok'"))
    assert [(r["kind"], r["name"]) for r in rows] == [
        ("slash_command", "user"),
        ("component", "user:status"),
    ]


@pytest.mark.parametrize("dm", [False, True], ids=["guild", "dm"])
async def test_chat_and_feedback_over_http(http: Harness, dm: bool) -> None:
    fake = http.fake
    await http.discord_user(1, status="new")
    http.provider.push(chunks=["over", " HTTP"])
    interaction = await fake.slash(1, "chat", {"prompt": "Does it work?"}, dm=dm)
    assert fake.endpoint_answers[interaction["id"]][1:] == (202, b"")

    def answered() -> dict[str, Any] | None:
        messages = fake.interaction_messages(interaction)
        if messages and any(":fb:" in c["custom_id"] for c in walk_components(messages[0])):
            return messages[0]
        return None

    answer = await fake.wait_until(answered)
    assert answer["content"] == "> Does it work?\n\nover HTTP"
    good = next(c["custom_id"] for c in walk_components(answer) if c["custom_id"].endswith("good"))
    click = await fake.click(1 if dm else 2, answer, good)  # a DM's session is its user's
    thanks = await reply_of(http, click)
    assert "feedback (good)" in thanks["content"] and thanks["flags"] & EPHEMERAL
    rows = await http.manager._run(
        lambda: list(http.manager.store.db.query("SELECT kind FROM feedback"))
    )
    assert rows == [{"kind": "good"}]


async def test_an_interaction_nobody_answers_is_a_503_not_a_hang(http: Harness) -> None:
    interaction = http.fake._interaction(
        1, 3, {"custom_id": "not:ours", "component_type": 2}, dm=False, channel_id=0
    )
    status, body = await http.fake.post_signed(url(http), json.dumps(interaction).encode())
    assert status == 503 and b"no initial response" in body


# ---- configuration ------------------------------------------------------------------------


def test_keys_parse_and_the_endpoint_needs_its_public_key(
    monkeypatch: pytest.MonkeyPatch, key: SigningKey
) -> None:
    monkeypatch.setenv("MSCHAT_DISCORD_INTERACTIONS_LISTEN", "5001")
    config = load_config()
    assert config.get("discord", "interactions_listen") == "127.0.0.1:5001"
    with pytest.raises(ConfigError, match=r"needs discord\.public_key"):
        check_endpoint_config(config, gateway=True)
    monkeypatch.setenv("MSCHAT_DISCORD_PUBLIC_KEY", key.verify_key.encode().hex().upper())
    config = load_config()
    assert config.get("discord", "public_key") == key.verify_key.encode().hex()
    check_endpoint_config(config, gateway=False)
    monkeypatch.delenv("MSCHAT_DISCORD_INTERACTIONS_LISTEN")
    with pytest.raises(ConfigError, match="--no-gateway"):
        check_endpoint_config(load_config(), gateway=False)
    for listen, parsed in (("0.0.0.0:80", "0.0.0.0:80"), ("[::1]:5001", "[::1]:5001")):
        monkeypatch.setenv("MSCHAT_DISCORD_INTERACTIONS_LISTEN", listen)
        assert load_config().get("discord", "interactions_listen") == parsed


async def test_a_replayed_interaction_runs_once(http: Harness) -> None:
    fake = http.fake
    await http.discord_user(1, status="new")
    interaction = await fake.slash(1, "chat", {"prompt": "only once"})
    assert fake.endpoint_answers[interaction["id"]][1] == 202
    # the same signed POST again, within the allowed skew: Discord refuses a second
    # acknowledgement, so the command stops before it touches anything
    status, _ = await fake.post_signed(url(http), json.dumps(interaction).encode())
    assert status == 502
    user = await http.discord_user(1)
    [session] = await eventually(lambda: http.manager.list_sessions(user, include_public=False))
    messages = await eventually(lambda: _complete(http.manager.messages(user, session.id)))
    assert [m.content for m in messages if m.role == "user"] == ["only once"]


async def _complete(messages: Any) -> Any:
    found = await messages
    return found if len(found) == 2 and found[1].status == "complete" else None


async def test_feedback_text_modal_over_http(http: Harness) -> None:
    fake = http.fake
    await http.discord_user(1, status="new")
    interaction = await fake.slash(1, "chat", {"prompt": "rate this"})
    answer = await fake.wait_until(
        lambda: next(
            (m for m in fake.interaction_messages(interaction) if walk_components(m)), None
        )
    )
    other = next(
        c["custom_id"] for c in walk_components(answer) if c["custom_id"].endswith("other")
    )
    click = await fake.click(2, answer, other)
    [callback] = fake.callbacks(click)
    assert callback.body["type"] == 9 and fake.endpoint_answers[click["id"]][1] == 202
    submitted = await fake.submit_modal(2, callback.body["data"]["custom_id"], {"text": "vague"})
    assert fake.endpoint_answers[submitted["id"]][1] == 202
    assert "feedback was recorded" in (await reply_of(http, submitted))["content"]
    rows = await http.manager._run(
        lambda: list(http.manager.store.db.query("SELECT kind, text FROM feedback"))
    )
    assert rows == [{"kind": "other", "text": "vague"}]


async def test_gateway_and_endpoint_together(
    fake: FakeDiscord, services: Services, provider: ScriptedProvider, key: SigningKey
) -> None:
    bot, endpoint, task, stop = await start_http_bot(fake, services, key, gateway=True)
    try:
        await eventually(lambda: bot.is_ready())
        h = Harness(fake, bot, services, provider, task, stop)
        await h.discord_user(1, status="new")
        # a plain message comes over the gateway, a command over HTTP
        message = await fake.send_message(1, "hello over the gateway", dm=True)
        await fake.wait_until(lambda: "👌" in fake.reactions.get(int(message["id"]), []))
        fake.deliver_over_http([endpoint.url], key)
        interaction = await fake.slash(1, "user", dm=True)
        assert fake.endpoint_answers[interaction["id"]][1] == 202
        assert "hello over the gateway" in (await reply_of(h, interaction))["content"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert fake.identified == 1


async def test_the_same_interaction_twice_at_once_runs_once(http: Harness) -> None:
    fake = http.fake
    await http.discord_user(1)
    gate = fake.hold("POST", "/callback")  # the first one's acknowledgement is in flight
    interaction = fake._interaction(1, 2, fake._command("user", 1), dm=True, channel_id=0)
    body = json.dumps(interaction).encode()
    first = asyncio.create_task(fake.post_signed(url(http), body))
    await eventually(lambda: fake.calls_to("POST", "/callback"))
    assert (await fake.post_signed(url(http), body))[0] == 409
    gate.set()
    assert (await first)[0] == 202
