"""The fair queue over the API: /chat-stream says the place in line, refusals are errors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from mschat.core.answer.turns import stamp
from mschat.core.services import Services
from tests.api.conftest import LiveApi, sse_json
from tests.conftest import eventually
from tests.fakes.scripted_provider import ScriptedProvider

NOT_COUNTED = "Waiting in line for a free slot"


def one_slot(services: Services, **queue: Any) -> None:
    """One answer at a time; ``queue`` settings as live ones."""
    services.config.providers["fake"].max_concurrency = 1
    for key, value in queue.items():
        services.live.set(f"queue.{key}", value, "tester")


async def hold_the_slot(api: LiveApi, provider: ScriptedProvider) -> tuple[asyncio.Event, Any]:
    """A /chat whose answer holds the only slot until the gate is set."""
    gate = asyncio.Event()
    provider.push(chunks=["held"], gate=gate)
    held = asyncio.create_task(api.client.post("/chat", json={"message": "hold", "user": "h"}))
    await eventually(lambda: provider.requests)
    return gate, held


async def waiting(services: Services) -> int:
    return (await asyncio.to_thread(services.store.queue_status, stamp())).waiting


async def stored(api: LiveApi, name: str, session_id: int) -> list[tuple[str, str, str | None]]:
    manager = api.services.manager
    messages = await manager.messages(await manager.user("api", name), session_id)
    return [(m.role, m.status, m.error) for m in messages]


async def test_chat_stream_says_the_place_in_line_before_the_answer(
    api: LiveApi, provider: ScriptedProvider
) -> None:
    one_slot(api.services)
    gate, held = await hold_the_slot(api, provider)
    body: list[str] = []

    async def stream() -> None:
        async with api.client.stream(
            "POST", "/chat-stream", json={"message": "in line", "user": "ann"}
        ) as response:
            async for text in response.aiter_text():
                body.append(text)

    streaming = asyncio.create_task(stream())
    await eventually(lambda: "event: queued" in "".join(body))
    gate.set()
    await asyncio.wait_for(asyncio.gather(held, streaming), 20)
    events = sse_json("".join(body))
    assert events[0][0] == "queued"
    assert [name for name, _ in events if name != "queued"] == ["start", "delta", "delta", "done"]
    # at first maybe before the line was counted, then the place
    queued = [data for name, data in events if name == "queued"]
    assert queued[-1] == {"position": 1, "ahead": 0, "message": "Waiting in line: yours is next"}
    assert queued[0] in (queued[-1], {"position": 0, "ahead": 0, "message": NOT_COUNTED})
    assert events[-1][1]["response"] == "Echo: in line"


async def test_a_v1_stream_comments_the_place_in_line(
    api: LiveApi, provider: ScriptedProvider
) -> None:
    one_slot(api.services)
    gate, held = await hold_the_slot(api, provider)
    body: list[str] = []

    async def stream() -> None:
        request = {
            "model": "fake/fake-model",
            "stream": True,
            "messages": [{"role": "user", "content": "in line"}],
        }
        async with api.client.stream("POST", "/v1/chat/completions", json=request) as response:
            async for text in response.aiter_text():
                body.append(text)

    streaming = asyncio.create_task(stream())
    await eventually(lambda: ": Waiting in line" in "".join(body))
    gate.set()
    await asyncio.wait_for(asyncio.gather(held, streaming), 20)
    assert "data: [DONE]" in "".join(body)


async def test_a_full_queue_is_a_429_and_the_question_is_stored(
    api: LiveApi, provider: ScriptedProvider
) -> None:
    one_slot(api.services, size=1)
    gate, held = await hold_the_slot(api, provider)
    queued = asyncio.create_task(api.client.post("/chat", json={"message": "w", "user": "w"}))
    await eventually(lambda: waiting(api.services))
    response = await api.client.post("/chat", json={"message": "no room", "user": "ann"})
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "queue_full" and "\n" not in body["error"]["message"]
    assert "queue is full" in body["error"]["message"]
    [question, reply] = await stored(api, "ann", body["session_id"])
    assert question[:2] == ("user", "complete") and reply[0] == "assistant"
    assert reply[1] == "failed" and "queue is full" in (reply[2] or "")
    # the stream says the same as its error event
    stream = await api.client.post("/chat-stream", json={"message": "again", "user": "bob"})
    [(name, error)] = sse_json(stream.text)[-1:]
    assert name == "error" and error["error"]["code"] == "queue_full"
    gate.set()
    for done in await asyncio.gather(held, queued):
        assert done.status_code == 200


async def test_a_question_waiting_too_long_is_a_429(
    api: LiveApi, provider: ScriptedProvider
) -> None:
    one_slot(api.services, max_age=0.3)
    gate, held = await hold_the_slot(api, provider)
    response = await api.client.post("/chat", json={"message": "late", "user": "ann"})
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "queue_timeout" and "waited 0.3 s" in body["error"]["message"]
    [_, reply] = await stored(api, "ann", body["session_id"])
    assert reply[1] == "failed" and "waited" in (reply[2] or "")
    gate.set()
    assert (await held).status_code == 200


async def test_paused_is_a_503_or_holds_the_request_until_resumed(
    api: LiveApi, provider: ScriptedProvider
) -> None:
    live = api.services.live
    live.set("queue.paused", True, "tester")
    response = await api.client.post("/chat", json={"message": "paused?", "user": "ann"})
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "paused" and "paused" in body["error"]["message"]
    [_, reply] = await stored(api, "ann", body["session_id"])
    assert reply[1] == "failed" and "paused" in (reply[2] or "")
    live.set("queue.when_paused", "hold", "tester")
    held = asyncio.create_task(api.client.post("/chat", json={"message": "held", "user": "bob"}))
    await eventually(lambda: waiting(api.services))
    assert not held.done() and not provider.requests
    live.unset("queue.paused")  # what `mschat ops resume` does
    answered: httpx.Response = await asyncio.wait_for(held, 20)
    assert answered.status_code == 200 and answered.json()["response"] == "Echo: held"
