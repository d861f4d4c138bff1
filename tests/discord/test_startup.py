"""A new server's first hour: new members' status, the invite URL, log lines safe to read."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from mschat.config import load_config
from mschat.core.services import Services, build_services
from mschat.discord.bot import VisibleFormatter
from tests.conftest import eventually, write_config
from tests.discord.conftest import start_bot, stop_bot
from tests.fakes.fake_discord import APP_ID, FakeDiscord
from tests.fakes.scripted_provider import ScriptedProvider

CONFIG = (
    '[general]\ndefault_model = "fake/fake-model"\n'
    '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n'
)
#: what the bot does in a server channel (see mschat/discord/invite.py for why each)
USED = {
    "view_channel",
    "send_messages",
    "send_messages_in_threads",
    "read_message_history",
    "add_reactions",
    "attach_files",
}
#: each terminal control sequence an outside text may try
HOSTILE = "\x1b[2J\x1b]52;c;aGk=\x07\x1b]0;owned\x07\x1b]8;;http://evil/\x07link\x9b31m"


@pytest.fixture
async def new_status_services(
    mschat_home: Path, provider: ScriptedProvider
) -> AsyncIterator[Services]:
    """Services whose config gives new Discord members the status ``new``."""
    write_config(mschat_home, CONFIG + '[discord]\ndefault_status = "new"\n')
    built = build_services(load_config(), providers={"fake": provider})
    yield built
    await built.aclose()


async def test_default_status_new_answers_a_new_members_first_message(
    fake: FakeDiscord, new_status_services: Services
) -> None:
    _bot, task, stop = await start_bot(fake, new_status_services)
    msg = await fake.send_message(42, "my very first message")
    mid = int(msg["id"])
    await fake.wait_until(lambda: "👌" in fake.reactions.get(mid, []))
    [reply] = fake.replies_to(mid)
    assert reply["content"] == "Echo: my very first message"
    user = await new_status_services.manager.user("discord", "42")
    assert user.status == "new"
    await stop_bot(task, stop)


async def test_by_default_a_new_member_is_disabled_and_not_answered(
    fake: FakeDiscord, services: Services
) -> None:
    _bot, task, stop = await start_bot(fake, services)
    quiet = await fake.send_message(42, "my very first message")
    hinted = await fake.send_message(42, "hello?", mention_bot=True)
    await fake.wait_until(lambda: fake.replies_to(hinted["id"]))
    assert "disabled" in fake.replies_to(hinted["id"])[0]["content"]
    assert not fake.replies_to(quiet["id"]) and not fake.reactions.get(int(quiet["id"]))
    assert (await services.manager.user("discord", "42")).status == "disabled"
    await stop_bot(task, stop)


def invites(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The invite URLs the bot logged."""
    return [
        r.args[0]  # type: ignore[index]
        for r in caplog.records
        if r.msg.startswith("invite the bot") and r.args
    ]


async def test_the_invite_url_is_logged_once_with_the_permissions_the_bot_uses(
    fake: FakeDiscord,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="mschat.discord")
    bot, task, stop = await start_bot(fake, services)

    async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
        return (
            None  # discord.py waits 5 s before identifying again: Discord's limit, not the fake's
        )

    monkeypatch.setattr(bot, "before_identify_hook", identify_at_once)
    await eventually(lambda: invites(caplog))
    # a reconnect brings READY (and on_ready) again, but not the invite
    await fake.drop_connections()
    await fake.wait_until(lambda: fake.identified == 2)
    await eventually(lambda: sum(r.msg.startswith("connected as") for r in caplog.records) == 2)
    [url] = invites(caplog)
    assert url.startswith("https://discord.com/oauth2/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [str(APP_ID)]
    assert query["scope"] == ["bot applications.commands"]
    granted = discord.Permissions(int(query["permissions"][0]))
    assert granted == discord.Permissions(**dict.fromkeys(USED, True))
    assert all(r.levelno == logging.INFO for r in caplog.records if "invite" in r.msg)
    await stop_bot(task, stop)


def test_log_lines_show_control_characters_instead_of_obeying_them() -> None:
    formatter = VisibleFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError(f"provider said {HOSTILE}")
    except ValueError:
        record = logging.LogRecord(
            "mschat.discord",
            logging.ERROR,
            __file__,
            1,
            "user %s failed",
            (HOSTILE,),
            sys.exc_info(),
        )
    line = formatter.format(record)
    assert not any(c in line for c in "\x1b\x07\x9b")
    assert "␛]52;c;aGk=␇" in line and "<U+009B>31m" in line
    assert "Traceback" in line and line.count("␛[2J") == 2  # the message and the exception
