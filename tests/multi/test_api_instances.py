"""Two real ``mschat serve-api`` processes on one database serve as one API: the same
users and sessions, one shared current session, one rate limit, one answer per
Idempotency-Key (on both backends; PostgreSQL is what runs many of them)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mschat.store import open_store
from tests.conftest import fake_model_config
from tests.dbs import sql
from tests.fakes.fake_openai import FakeOpenAIThread

pytestmark = pytest.mark.backends


@dataclass
class Server:
    """One ``mschat serve-api`` process and what it logged."""

    process: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)
    url: str = ""
    drainer: asyncio.Task[None] | None = None


async def start_server(db_url: str) -> Server:
    """``mschat serve-api --port 0`` on ``db_url``; returns once it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mschat",
        "serve-api",
        "--port",
        "0",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MSCHAT_DB": db_url},
    )
    server = Server(process)
    listening = asyncio.Event()

    async def drain() -> None:
        # the access log must never fill the pipe and stall the server
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace")
            server.log.append(line)
            if "listening on" in line:
                server.url = line.split("listening on", 1)[1].strip()
                listening.set()

    server.drainer = asyncio.create_task(drain())
    try:
        await asyncio.wait_for(listening.wait(), 30)
    except TimeoutError:
        raise AssertionError("serve-api did not start: " + "".join(server.log)) from None
    return server


async def stop_server(server: Server) -> None:
    """SIGTERM, then wait for a clean exit."""
    if server.process.returncode is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.process.wait(), 20)
        except TimeoutError:
            server.process.kill()
            await server.process.wait()
    if server.drainer is not None:
        await server.drainer


@pytest.fixture
async def apis(
    mschat_home: Path, db_url: str, fake_thread: FakeOpenAIThread
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of two serve-api processes on one (migrated) database."""
    fake_model_config(mschat_home, fake_thread.base_url, "max_retries = 0\n")
    open_store(db_url).close()
    servers = await asyncio.gather(start_server(db_url), start_server(db_url))
    try:
        async with (
            httpx.AsyncClient(base_url=servers[0].url, timeout=30) as first,
            httpx.AsyncClient(base_url=servers[1].url, timeout=30) as second,
        ):
            yield first, second
    finally:
        for server in servers:
            await stop_server(server)


async def test_a_user_alternating_between_instances_stays_in_one_conversation(
    apis: tuple[httpx.AsyncClient, httpx.AsyncClient],
    db_url: str,
    fake_thread: FakeOpenAIThread,
):
    first, second = apis
    answers = []
    for number, client in enumerate((first, second, first, second)):
        response = await client.post("/chat", json={"message": f"turn {number}", "user": "ann"})
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert len({answer["session_id"] for answer in answers}) == 1
    assert answers[-1]["response"] == "Echo: turn 3"
    # the last question went out with every earlier turn, whichever instance stored it
    sent = [m["content"] for m in fake_thread.requests[-1]["messages"] if m["role"] != "system"]
    assert sent == [
        "turn 0",
        "Echo: turn 0",
        "turn 1",
        "Echo: turn 1",
        "turn 2",
        "Echo: turn 2",
        "turn 3",
    ]
    # the current session is the user's, not an instance's
    for client in apis:
        user = (await client.get("/users/ann")).json()
        assert user["current_session_id"] == answers[0]["session_id"]

    # a session made through one instance is listed and used through the other
    made = await first.post("/users/ben/sessions", json={"title": "made on one"})
    assert made.status_code == 201
    listed = (await second.get("/users/ben/sessions")).json()
    assert [s["id"] for s in listed["sessions"]] == [made.json()["id"]]
    used = await second.post(
        "/chat", json={"message": "used on the other", "user": "ben", "session": made.json()["id"]}
    )
    assert used.status_code == 200 and used.json()["session_id"] == made.json()["id"]
    shown = (await first.get(f"/sessions/{made.json()['id']}", params={"user": "ben"})).json()
    assert [m["content"] for m in shown["messages"]] == [
        "used on the other",
        "Echo: used on the other",
    ]


async def test_a_rate_limit_and_an_idempotency_key_hold_across_instances(
    apis: tuple[httpx.AsyncClient, httpx.AsyncClient],
    db_url: str,
    fake_thread: FakeOpenAIThread,
):
    first, second = apis
    store = open_store(db_url)
    try:
        cat = store.create_user(kind="api", external_id="cat", name="cat", status="new")
        store.update_user(cat.id, rate_limit=3)
        posts = [
            client.post("/chat", json={"message": f"ask {number}", "user": "cat"})
            for number in range(4)
            for client in apis
        ]
        responses = await asyncio.gather(*posts)
        codes = sorted(response.status_code for response in responses)
        assert codes == [200] * 3 + [429] * 5
        refused = [r.json()["error"] for r in responses if r.status_code == 429]
        assert {error["code"] for error in refused} == {"rate_limited"}
        questions = sql(
            store, "SELECT count(*) FROM messages WHERE author_id = ? AND role = 'user'", [cat.id]
        )
        assert questions == [(3,)]
        assert sql(store, "SELECT count(*) FROM sessions WHERE creator_id = ?", [cat.id]) == [(3,)]

        # one Idempotency-Key sent to both instances at once: answered once
        body = {"message": "exactly once", "user": "dan"}
        headers = {"Idempotency-Key": "same-key"}
        once, again = await asyncio.gather(
            first.post("/chat", json=body, headers=headers),
            second.post("/chat", json=body, headers=headers),
        )
        assert once.status_code == again.status_code == 200
        assert once.json() == again.json()
        asked = [r for r in fake_thread.requests if r["messages"][-1]["content"] == "exactly once"]
        assert len(asked) == 1
        stored = sql(store, "SELECT count(*) FROM messages WHERE content = ?", ["exactly once"])
        assert stored == [(1,)]
    finally:
        store.close()
