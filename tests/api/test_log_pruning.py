"""serve-api prunes the logs older than ``logs.retention_days`` when it starts."""

from __future__ import annotations

import pytest

from mschat.core.services import Services
from tests.api.conftest import live_api
from tests.conftest import eventually
from tests.core.test_log_pruning import empty, logged, sizes


@pytest.mark.backends
async def test_the_api_server_prunes_old_logs_at_start(services: Services):
    await logged(services)
    assert await sizes(services) == (1, 1)
    async for live in live_api(services, token=""):
        assert (await live.client.get("/healthz")).status_code == 200
        await eventually(lambda: empty(services))
