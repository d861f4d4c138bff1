"""Property-based fuzzing of the live API from its own OpenAPI document: never a 5xx."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from mschat.api.openapi import openapi_document
from mschat.api.server import make_api
from mschat.config import load_config
from mschat.core.services import Services, build_services
from tests.api.conftest import serve_app
from tests.conftest import write_config
from tests.fakes.scripted_provider import ScriptedProvider

TOKEN = "fuzz-token"
#: every answer is a documented status, with the documented content type and shape
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 120  # per generation mode; keeps the whole file to a few seconds


class ThreadedApi:
    """The API over the scripted provider on its own event loop thread (schemathesis
    calls it synchronously)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api", daemon=True)
        self.services: Services | None = None
        self.runner = None
        self.url = ""

    def start(self) -> str:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)

    async def _start(self) -> str:
        self.services = build_services(load_config(), providers={"fake": ScriptedProvider()})
        self.runner, self.url = await serve_app(make_api(self.services, token=TOKEN))
        return self.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.services is not None:
            await self.services.aclose()


@pytest.fixture
def threaded_api(mschat_home: Path) -> Iterator[str]:
    write_config(
        mschat_home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model", "other"]\n',
    )
    server = ThreadedApi()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_no_server_errors_from_the_openapi_document(threaded_api: str, mode):
    schema = schemathesis.openapi.from_dict(openapi_document())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses: list[int] = []

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case) -> None:
        response = case.call(base_url=threaded_api, headers=headers, timeout=10)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    fuzz()
    assert statuses and max(statuses) < 500
    if mode == schemathesis.GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for status in statuses)
