"""End to end over a real loopback socket: the TUI, the core, the httpx provider, the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from mschat.config import load_config
from mschat.core.models import MessageStatus
from mschat.core.services import Services, build_services
from mschat.tui.widgets.chat import MessageView
from tests.conftest import write_config
from tests.fakes.fake_openai import FakeOpenAI
from tests.tui.conftest import SIZE, build_app, ready, type_and_send, wait_for


@pytest_asyncio.fixture
async def fake_services(mschat_home: Path) -> AsyncIterator[tuple[FakeOpenAI, Services]]:
    """Services whose only provider is the real OpenAI-compatible client on the fake."""
    async with FakeOpenAI(chunk_size=3) as fake:
        write_config(
            mschat_home,
            '[general]\ndefault_model = "loop/fake-model"\n'
            f'[providers.loop]\nbase_url = "{fake.base_url}"\napi_key = "sk-test"\n'
            'models = ["fake-model"]\nmax_retries = 0\n',
        )
        services = build_services(load_config())
        yield fake, services
        await services.aclose()


async def test_streams_a_reply_from_the_fake_server(fake_services):
    fake, services = fake_services
    fake.push(reply="Hello from **the fake** server, streamed in small pieces.")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "hi")
        await wait_for(pilot, lambda: len(app.chat.query(MessageView)) == 2, what="reply")
        reply = list(app.chat.query(MessageView))[-1].message
        assert reply.content == "Hello from **the fake** server, streamed in small pieces."
        assert reply.status == MessageStatus.COMPLETE
        assert fake.requests[-1]["stream"] is True


async def test_a_server_error_is_shown_and_the_prompt_kept(fake_services):
    fake, services = fake_services
    fake.push(fault="500", message="boom")
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "will fail")
        await wait_for(pilot, lambda: app.status.state == "failed", what="failure")
        await wait_for(pilot, lambda: len(app.chat.query(MessageView)) == 2, what="failed reply")
        assert list(app.chat.query(MessageView))[-1].message.status == MessageStatus.FAILED
        assert app.prompt.text == "will fail"
