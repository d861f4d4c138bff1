"""Credentials in a base URL and the API key never leave the provider in clear.

Not in error lines, retry notices, logs, reprs, tracebacks, the database
(``messages.error``, ``api_calls``) or the state file; but the server still
receives them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import traceback
from pathlib import Path

import pytest

from mschat.core.errors import ProviderError
from mschat.core.events import Failed, Retrying
from mschat.providers.base import ChatMessage, ChatRequest, RetryChunk
from mschat.providers.openai_compat import OpenAICompatProvider
from tests.fakes.fake_openai import FakeOpenAI
from tests.providers.conftest import KEY, MakeProvider, fake_services, rows
from tests.providers.test_openai_compat import closed_port

PASSWORD = "pw-hunter2-in-the-url"
QUERY_KEY = "SECRETQ-query-key-42"
SECRETS = (PASSWORD, QUERY_KEY, KEY)
REQUEST = ChatRequest(model="fake-model", messages=(ChatMessage("user", "hi"),))


def secret_url(base_url: str) -> str:
    """``base_url`` with a user:password and an api_key query parameter."""
    scheme, rest = base_url.split("://")
    return f"{scheme}://alice:{PASSWORD}@{rest}?api_key={QUERY_KEY}"


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


async def failure(provider: OpenAICompatProvider) -> tuple[ProviderError, list[RetryChunk]]:
    retries: list[RetryChunk] = []
    with pytest.raises(ProviderError) as info:
        async for event in provider.stream_chat(REQUEST):
            if isinstance(event, RetryChunk):
                retries.append(event)
    return info.value, retries


def everything_said(error: ProviderError, retries: list[RetryChunk]) -> list[str]:
    """Every text of a failure a front end or a log could show."""
    return [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        *(r.error for r in retries),
    ]


async def test_a_closed_port_names_the_url_without_its_secrets(
    make: MakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = secret_url(f"http://127.0.0.1:{closed_port()}/v1")
    provider = make(base_url=url, max_retries=1)
    error, retries = await failure(provider)
    assert error.kind == "unreachable" and len(retries) == 1
    assert "alice:****@127.0.0.1" not in str(error)  # the whole user info is masked
    assert "****@127.0.0.1" in str(error) and "api_key=****" in str(error)
    assert_clean(*everything_said(error, retries), logged(caplog), repr(provider))


@pytest.mark.parametrize("status", ["401", "400", "500"])
async def test_a_server_echoing_the_request_does_not_leak_it(
    fake: FakeOpenAI, make: MakeProvider, caplog: pytest.LogCaptureFixture, status: str
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.inject(status, times=None, echo=True)
    provider = make(base_url=secret_url(fake.base_url), max_retries=1)
    error, retries = await failure(provider)
    assert error.status == int(status)
    assert_clean(*everything_said(error, retries), logged(caplog), repr(provider))
    # the secrets did reach the server: only what mschat shows is masked
    call = fake.calls[0]
    assert (call.path, call.query) == ("/v1/chat/completions", f"api_key={QUERY_KEY}")
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert call.headers["Authorization"] == f"Basic {basic}"
    if status != "401":
        assert "api_key=****" in str(error)


async def test_a_model_listing_failure_does_not_leak_them(fake: FakeOpenAI) -> None:
    fake.api_key = "sk-something-else"
    provider = OpenAICompatProvider("fake", secret_url(fake.base_url), KEY)
    with pytest.raises(ProviderError) as info:
        await asyncio.to_thread(provider.served_models)
    assert_clean(str(info.value), repr(provider))


async def test_nothing_stored_or_logged_holds_a_secret(
    fake: FakeOpenAI, mschat_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    services = fake_services(
        mschat_home,
        secret_url(fake.base_url),
        f'api_key = "{KEY}"\n' + f'[providers.open]\nbase_url = "{secret_url(fake.base_url)}"\n',
    )
    try:
        me = await services.manager.local_user()
        fake.inject("500", times=None, echo=True)
        events = [e async for e in services.manager.ask(me, "hello", new_session=True)]
        assert isinstance(events[-1], Failed)
        fake.clear_faults()
        fake.serve_models = False
        # a provider without a models list asks its server, which fails: still no secret
        # (resolving blocks while it asks: off this loop, which runs the fake server)
        with pytest.raises(ProviderError) as info:
            await asyncio.to_thread(services.manager.resolve_model, "open/anything")
        listed = await services.manager.list_models()
        shown = [
            str(events[-1].error),
            *(e.error for e in events if isinstance(e, Retrying)),
            str(info.value),
            *services.registry.unlisted.values(),
            repr(services),
            repr(services.registry),
            repr(services.registry.provider("fake")),
            repr(listed),
        ]
    finally:
        await services.aclose()
    assert_clean(*shown, logged(caplog))
    db = services.config.db
    stored = rows(db, "SELECT error FROM messages") + rows(db, "SELECT * FROM api_calls")
    assert len(rows(db, "SELECT * FROM api_calls")) == 2  # the retry and the failure
    assert_clean(repr(stored))
    for path in mschat_home.iterdir():  # the database, its WAL, the state file
        if path.name != "config.toml" and path.is_file():
            assert_clean(path.read_bytes().decode("utf-8", "replace"))
