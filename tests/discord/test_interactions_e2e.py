"""Two ``mschat serve-discord --no-gateway`` processes over one database, behind one URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.conftest import fake_model_config
from tests.fakes.fake_discord import FakeDiscord, walk_components
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.servers import MschatProcess

pytestmark = pytest.mark.backends


@pytest.fixture
async def db_services(
    mschat_home: Path, fake_thread: FakeOpenAIThread, db_url: str
) -> AsyncIterator[Services]:
    """The test's own view of the database the two processes share."""
    fake_model_config(mschat_home, fake_thread.start())
    services = build_services(load_config(db=db_url))
    yield services
    await services.aclose()


def buttons(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for c in walk_components(message)]


async def test_two_endpoints_behind_a_balancer_are_one_bot(
    fake: FakeDiscord, db_services: Services, mschat_home: Path, db_url: str
) -> None:
    key = SigningKey.generate()
    manager = db_services.manager
    env = {
        **os.environ,
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DB": db_url,
        "MSCHAT_DISCORD_TOKEN": fake.token,
        "MSCHAT_DISCORD_API_BASE": fake.api_base,
        "MSCHAT_DISCORD_INTERACTIONS_LISTEN": "127.0.0.1:0",
        "MSCHAT_DISCORD_PUBLIC_KEY": key.verify_key.encode().hex(),
    }
    processes: list[MschatProcess] = []
    try:
        for _ in range(2):
            processes.append(
                await MschatProcess.start(
                    env,
                    "serve-discord",
                    "--no-gateway",
                    "--log-level",
                    "info",
                    ready="interactions endpoint listening on",
                )
            )
        urls = [
            re.search(r"listening on (http://\S+)", p.log).group(1) + "/interactions"  # type: ignore[union-attr]
            for p in processes
        ]
        fake.deliver_over_http(urls, key)  # the balancer: one interaction each in turn
        await fake.wait_until(lambda: "global" in fake.commands, 20)

        panel_command = await fake.slash(7, "user")  # first endpoint
        panel = await fake.wait_until(
            lambda: next(
                (m for m in fake.interaction_messages(panel_command) if m["components"]), None
            ),
            20,
        )
        user = await manager.user("discord", "7")
        click = await fake.click(7, panel, f"mschat:user:{user.id}:status", ["new"])  # second
        await fake.wait_until(
            lambda: "Status: **new**" in fake.messages[int(panel["id"])]["content"], 20
        )
        click = await fake.click(7, panel, f"mschat:user:{user.id}:attach")  # first
        await fake.wait_until(lambda: "Attach: on" in str(fake.messages[int(panel["id"])]), 20)

        answers = []
        for prompt in ("asked at one", "asked at the other"):
            interaction = await fake.slash(7, "chat", {"prompt": prompt})
            answer = await fake.wait_until(
                lambda i=interaction: next(
                    (
                        m
                        for m in fake.interaction_messages(i)
                        if any(":fb:" in b for b in buttons(m))
                    ),
                    None,
                ),
                20,
            )
            answers.append((interaction, answer))
        served_by = [fake.endpoint_answers[i["id"]][0] for i in (panel_command, click)]
        served_by += [fake.endpoint_answers[i["id"]][0] for i, _ in answers]
        assert served_by == [urls[0], urls[0], urls[1], urls[0]]
        assert all(status == 202 for _, status, _ in fake.endpoint_answers.values())

        # one session, continued across the two processes
        user = await manager.user("discord", "7")
        [session] = await manager.list_sessions(user, include_public=False)
        assert user.current_session_id == session.id
        messages = await manager.messages(user, session.id)
        assert [m.content for m in messages if m.role == "user"] == [
            "asked at one",
            "asked at the other",
        ]
        assert all(m.status == "complete" for m in messages) and len(messages) == 4

        # a feedback button on the first process's answer, clicked through the second
        first_answer = answers[0][1]
        good = next(b for b in buttons(first_answer) if b.endswith(":fb:good"))
        feedback = await fake.click(8, first_answer, good)
        assert fake.endpoint_answers[feedback["id"]][0] == urls[1]
        await fake.wait_until(
            lambda: any(
                "feedback (good)" in m["content"] for m in fake.interaction_messages(feedback)
            ),
            20,
        )
        assert fake.identified == 0  # neither process opened a gateway connection
    finally:
        codes = [await p.stop() for p in processes]
    assert codes == [0, 0]
    for process in processes:
        assert "HTTP interactions only" in process.log
        assert "Traceback" not in process.log and fake.token not in process.log


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({}, "--no-gateway serves only HTTP interactions"),
        ({"MSCHAT_DISCORD_INTERACTIONS_LISTEN": "5001"}, "needs discord.public_key"),
        ({"MSCHAT_DISCORD_PUBLIC_KEY": "abc"}, "64 hex digits"),
    ],
)
def test_no_gateway_without_an_endpoint_is_one_clear_line(
    mschat_home: Path, extra: dict[str, str], said: str
) -> None:
    env = {**os.environ, "MSCHAT_HOME": str(mschat_home), "MSCHAT_DISCORD_TOKEN": "t", **extra}
    done = subprocess.run(
        [sys.executable, "-m", "mschat", "serve-discord", "--no-gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert said in done.stderr and "Traceback" not in done.stderr
