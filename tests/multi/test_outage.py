"""PostgreSQL going away while mschat runs: refusals, reconnection, nothing lost.

These tests stop and restart a server of their own (never the session's shared
cluster), and wait on conditions: ``pg_ctl -w`` returns once the server is down,
or once it accepts connections again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mschat.config import load_config
from mschat.core.errors import DatabaseUnavailable
from mschat.core.events import Started, TextDelta
from mschat.core.manager import SessionManager
from mschat.core.models import MessageStatus
from mschat.core.services import Services, build_services
from mschat.providers.registry import Registry
from mschat.store import Store, open_store
from mschat.store.contract import TABLES, Change
from mschat.tui.widgets.chat import MessageView
from tests.conftest import eventually, fake_model_config, pg_binaries, unavailable, write_config
from tests.fakes.fake_discord import QA_CHANNEL_ID, FakeDiscord
from tests.fakes.fake_openai import FakeOpenAIThread
from tests.fakes.scripted_provider import ScriptedProvider
from tests.pg import Cluster
from tests.servers import MschatProcess
from tests.tui.conftest import SIZE, build_app, ready, type_and_send, wait_for

pytestmark = pytest.mark.timeout(120)

#: the role mschat connects as; its password must never show anywhere
ROLE, PASSWORD = "mschat", "pw-s3cret-9431"
TEMPLATE = "outage_template"
#: the reply lease of the instances whose death the tests watch for
LEASE = 1.5
_databases = itertools.count(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL server for these tests alone, with a migrated template database."""
    server = Cluster(pg_binaries())
    try:
        server.start()
        server.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        server.execute(f"CREATE DATABASE {TEMPLATE} OWNER {ROLE}")
        open_store(role_url(server, TEMPLATE)).close()
    except Exception as exc:
        server.stop()
        unavailable(f"cannot start PostgreSQL: {exc}")
    yield server
    server.stop()


def role_url(cluster: Cluster, dbname: str) -> str:
    """The URL mschat uses: its own role, with a password."""
    return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{cluster.port}/{dbname}"


@pytest.fixture
def url(cluster: Cluster) -> Iterator[str]:
    """A fresh migrated database on the test's server, which is running."""
    if not cluster.running:  # a failed test may have left it stopped
        cluster.start_server()
    name = f"outage_{os.getpid()}_{next(_databases)}"
    cluster.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE} OWNER {ROLE}')
    yield role_url(cluster, name)
    if not cluster.running:
        cluster.start_server()
    cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def every_row(cluster: Cluster, url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every mschat table, read as the superuser."""
    import psycopg

    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.url(dbname)) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}


def assert_one_clean_line(text: str) -> None:
    """An outage as mschat reports it: one line, no password, no driver internals."""
    assert "\n" not in text.strip() and PASSWORD not in text
    assert "unreachable" in text and "try again shortly" in text
    assert "psycopg" not in text and "Traceback" not in text


def scripted_services(home: Path, url: str, provider: ScriptedProvider) -> Services:
    """Services over ``url`` whose default model is the scripted provider."""
    write_config(
        home,
        '[general]\ndefault_model = "fake/fake-model"\n'
        '[providers.fake]\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["fake-model"]\n',
    )
    return build_services(load_config(db=url), providers={"fake": provider})


# ---- the store ------------------------------------------------------------------------


def test_the_store_reconnects_after_a_restart_and_refuses_while_down(
    cluster: Cluster, url: str
) -> None:
    store = open_store(url)
    try:
        user = store.create_user(kind="api", external_id="a", name="a", status="active")
        session = store.create_session(
            creator_id=user.id, title="t", model=None, system_msg=None, public=0, origin="api"
        )
        store.add_message(session_id=session.id, author_id=user.id, role="user", content="kept")
        with ThreadPoolExecutor(4) as threads:  # several pooled connections, all idle now
            list(threads.map(lambda _: store.get_session(session.id), range(40)))
        before = every_row(cluster, url)

        cluster.restart()
        # the pool's connections died with the server: none is handed out
        assert store.get_session(session.id).title == "t"

        cluster.stop_server()
        for attempt in (store.list_users, lambda: store.create_user(kind="api", external_id="b")):
            with pytest.raises(DatabaseUnavailable) as refused:
                attempt()
            assert_one_clean_line(str(refused.value))
            assert "connection refused" in str(refused.value)
        with pytest.raises(DatabaseUnavailable), store.write():
            store.get_user(user.id)

        cluster.start_server()
        assert every_row(cluster, url) == before  # nothing stored before is lost
        assert store.find_user("api", "b") is None  # nor half-stored during the outage
        assert store.create_user(kind="api", external_id="b", name="b", status="active").id
    finally:
        store.close()


def test_a_server_gone_inside_a_transaction_stores_none_of_it(cluster: Cluster, url: str) -> None:
    store = open_store(url)
    try:
        user = store.create_user(kind="api", external_id="a", name="before", status="active")
        with pytest.raises(DatabaseUnavailable), store.write():
            store.update_user(user.id, name="half")
            cluster.stop_server()
            store.get_user(user.id)
        cluster.start_server()
        assert store.get_user(user.id).name == "before"
    finally:
        store.close()


# ---- the core -------------------------------------------------------------------------


async def test_a_question_during_an_outage_is_refused_and_never_stored(
    cluster: Cluster, url: str, mschat_home: Path, provider: ScriptedProvider
) -> None:
    services = scripted_services(mschat_home, url, provider)
    manager = services.manager
    try:
        me = await manager.local_user()
        first = [e async for e in manager.ask(me, "before", new_session=True)]
        session_id = first[0].session.id

        await asyncio.to_thread(cluster.stop_server)
        with pytest.raises(DatabaseUnavailable) as refused:
            async for event in manager.ask(me, "during", session_id=session_id):
                raise AssertionError(f"nothing may start during the outage: {event}")
        assert_one_clean_line(str(refused.value))

        await asyncio.to_thread(cluster.start_server)
        # the same manager, no restart: the next question is answered
        after = [e async for e in manager.ask(me, "after", session_id=session_id)]
        assert after[-1].message.content == "Echo: after"
        stored = await manager.messages(me, session_id)
        assert [m.content for m in stored] == ["before", "Echo: before", "after", "Echo: after"]
    finally:
        await services.aclose()


async def test_a_server_gone_mid_reply_leaves_it_interrupted_and_the_question_kept(
    cluster: Cluster, url: str, mschat_home: Path
) -> None:
    provider = ScriptedProvider()
    gate = asyncio.Event()
    provider.push(chunks=["kept part", ", lost part"], gate=gate)
    services = scripted_services(mschat_home, url, provider)
    registry = Registry(services.config, providers={"fake": provider})
    # an instance whose every chunk is written at once, under a short lease
    writer = SessionManager(
        open_store(url), registry, lease=timedelta(seconds=LEASE), flush_interval=0.0
    )
    store = services.store
    try:
        writer.watch_replies()
        me = await writer.local_user()
        events = writer.ask(me, "what I typed", new_session=True)
        started = await anext(events)
        assert isinstance(started, Started)
        assert isinstance(await anext(events), TextDelta)

        async def the_rest() -> list[object]:
            return [event async for event in events]

        rest = asyncio.ensure_future(the_rest())  # flushes "kept part", then waits
        await eventually(lambda: store.get_message(started.reply_id).content == "kept part")

        await asyncio.to_thread(cluster.stop_server)
        gate.set()  # the next chunk's write finds no server
        with pytest.raises(DatabaseUnavailable) as failed:
            await rest
        assert_one_clean_line(str(failed.value))
        await asyncio.to_thread(cluster.start_server)

        # the writer's lease runs out and its own watch marks the reply: never streaming forever
        await eventually(
            lambda: store.get_message(started.reply_id).status == MessageStatus.INTERRUPTED,
            timeout=LEASE * 4,
        )
        reply = store.get_message(started.reply_id)
        assert reply.content == "kept part"
        question = store.get_message(started.user_message.id)
        assert (question.content, question.status) == ("what I typed", MessageStatus.COMPLETE)
    finally:
        await writer.aclose()
        await services.aclose()


# ---- a killed instance ----------------------------------------------------------------


def _when(stamp: str | None) -> datetime:
    assert stamp is not None
    return datetime.fromisoformat(stamp)


async def test_a_killed_instance_reply_is_interrupted_by_another_within_a_lease(
    url: str, mschat_home: Path, fake_thread: FakeOpenAIThread
) -> None:
    fake_model_config(mschat_home, fake_thread.start())
    fake_thread.push(delay=0.1, reply_length=100_000)  # a slow model: a chunk every 0.1 s
    watcher = SessionManager(
        open_store(url),
        Registry(load_config(db=url), providers={}),
        lease=timedelta(seconds=LEASE),
    )
    store = watcher.store
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.multi.outage_writer",
        url,
        str(LEASE),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        watcher.watch_replies()
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.startswith(b"started "), line
        reply_id = int(line.split()[1])
        created = _when(store.get_message(reply_id).created)

        def renewed_past_two_leases() -> bool:
            reply = store.get_message(reply_id)
            lease = store.read_rows("messages", after_id=reply_id - 1, limit=1)[0]["lease_until"]
            return bool(reply.content) and _when(lease) > created + timedelta(seconds=2 * LEASE)

        # alive, it streams and renews its lease: the watcher leaves its reply alone
        await eventually(renewed_past_two_leases, timeout=LEASE * 6)
        assert store.get_message(reply_id).status == MessageStatus.STREAMING

        process.send_signal(signal.SIGKILL)
        await process.wait()
        written = store.get_message(reply_id).content
        await eventually(
            lambda: store.get_message(reply_id).status == MessageStatus.INTERRUPTED,
            timeout=LEASE * 2.5,  # its last lease, plus the watcher's half-lease period
        )
        reply = store.get_message(reply_id)
        assert reply.content == written and "stopped" in (reply.error or "")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await watcher.aclose()


# ---- real processes: the API server, the bot, the CLI ---------------------------------


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """The project's fake Discord, on loopback."""
    async with FakeDiscord() as server:
        yield server


async def test_the_api_and_the_bot_ride_out_a_database_restart(
    cluster: Cluster,
    url: str,
    mschat_home: Path,
    fake_thread: FakeOpenAIThread,
    fake_discord: FakeDiscord,
) -> None:
    fake_model_config(mschat_home, fake_thread.start())
    env = {
        **os.environ,
        "MSCHAT_HOME": str(mschat_home),
        "MSCHAT_DB": url,
        "MSCHAT_DISCORD_TOKEN": fake_discord.token,
        "MSCHAT_DISCORD_API_BASE": fake_discord.api_base,
        "MSCHAT_DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "MSCHAT_DISCORD_QA_CHANNELS": str(QA_CHANNEL_ID),
        "MSCHAT_DISCORD_DEFAULT_STATUS": "active",
    }
    servers: list[MschatProcess] = []

    async def ask_bot(text: str, mark: str) -> dict[str, Any]:
        message = await fake_discord.send_message(7, text)
        await fake_discord.wait_until(
            lambda: mark in fake_discord.reactions.get(int(message["id"]), []), 20
        )
        return message

    try:
        api = await MschatProcess.start(env, "serve-api", "--port", "0", ready="listening on")
        servers.append(api)
        bot = await MschatProcess.start(env, "serve-discord", ready="connected as")
        servers.append(bot)
        base = api.log.split("listening on", 1)[1].split()[0]
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def chat(text: str) -> httpx.Response:
                return await client.post("/chat", json={"message": text, "user": "alice"})

            assert (await chat("before the restart")).status_code == 200
            before_bot = await ask_bot("before the restart, on Discord", "👌")
            # the bot logs the message once its answer is over, just after 👌
            await eventually(lambda: every_row(cluster, url)["interactions"], 10)
            before = every_row(cluster, url)

            await asyncio.to_thread(cluster.stop_server)
            # the API: 503, the usual JSON error, Retry-After
            refused = await chat("during the outage")
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
            assert refused.headers["x-should-retry"] == "true"
            error = refused.json()["error"]
            assert error["code"] == "database_unavailable" and error["type"] == "api_error"
            assert_one_clean_line(error["message"])
            assert (await client.get("/healthz")).status_code == 503
            # the bot: ❌ and one short line
            during_bot = await ask_bot("during the outage, on Discord", "❌")
            [note] = await fake_discord.wait_until(
                lambda: fake_discord.replies_to(during_bot["id"]), 20
            )
            assert "unreachable" in note["content"] and "try again shortly" in note["content"]

            await asyncio.to_thread(cluster.start_server)
            assert every_row(cluster, url) == before  # every earlier row intact
            # both answer again, neither restarted
            answered = await chat("after the restart")
            assert answered.status_code == 200, answered.text
            assert "after the restart" in answered.json()["response"]
            await ask_bot("after the restart, on Discord", "👌")
            # a restart between two requests goes unnoticed: no dead connection is used
            await asyncio.to_thread(cluster.restart)
            assert (await chat("after a second restart")).status_code == 200
            await ask_bot("after a second restart, on Discord", "👌")

        questions = [
            row["content"] for row in open_store_rows(url, "messages") if row["role"] == "user"
        ]
        assert questions == [
            "before the restart",
            "before the restart, on Discord",
            "after the restart",
            "after the restart, on Discord",
            "after a second restart",
            "after a second restart, on Discord",
        ]
        assert fake_discord.replies_to(before_bot["id"])
    finally:
        codes = [await server.stop() for server in servers]
    assert codes == [0] * len(servers)
    for server in servers:
        assert "Traceback" not in server.log and PASSWORD not in server.log


def open_store_rows(url: str, table: str) -> list[dict[str, Any]]:
    """Every row of one table, through mschat's own store."""
    store: Store = open_store(url)
    try:
        return store.read_rows(table)
    finally:
        store.close()


def test_the_cli_refuses_in_one_line_and_works_once_the_server_is_back(
    cluster: Cluster, url: str, mschat_home: Path, fake_thread: FakeOpenAIThread
) -> None:
    fake_model_config(mschat_home, fake_thread.start())
    env = {**os.environ, "MSCHAT_HOME": str(mschat_home), "MSCHAT_DB": url}

    def ask(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mschat", "ask", text],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    cluster.stop_server()
    refused = ask("during the outage")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("Error: ")
    assert_one_clean_line(refused.stderr)
    cluster.start_server()
    answered = ask("after the restart")
    assert answered.returncode == 0, answered.stderr
    assert "after the restart" in answered.stdout
    rows = open_store_rows(url, "messages")
    assert [r["content"] for r in rows if r["role"] == "user"] == ["after the restart"]


# ---- the TUI --------------------------------------------------------------------------


async def test_the_tui_refuses_with_a_notice_keeps_the_prompt_and_reconnects(
    cluster: Cluster, url: str, mschat_home: Path, provider: ScriptedProvider
) -> None:
    services = scripted_services(mschat_home, url, provider)
    polls = 0

    def notices(text: str) -> int:
        return sum(text in n.message for n in app._notifications)

    def shown() -> list[str]:
        return [view.message.content for view in app.chat.query(MessageView)]

    app = build_app(services)
    reload_changed = app._reload_changed

    async def counted(changes: list[Change]) -> None:
        nonlocal polls
        polls += 1
        await reload_changed(changes)

    app._reload_changed = counted  # type: ignore[method-assign]
    try:
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await type_and_send(pilot, "before")
            await wait_for(pilot, lambda: shown() == ["before", "Echo: before"], what="reply")
            session = app.session
            assert session is not None

            await asyncio.to_thread(cluster.stop_server)
            # the live view's feed loses its connection, its refresh finds the server gone:
            # one notice, however often the refresh is tried
            await wait_for(pilot, lambda: notices("unreachable") == 1, what="outage notice")
            seen = polls
            await wait_for(pilot, lambda: polls >= seen + 3, what="more refreshes")
            assert notices("unreachable") == 1
            # a question: refused with a notice, and what was typed stays in the prompt
            await type_and_send(pilot, "during")
            await wait_for(pilot, lambda: notices("unreachable") == 2, what="refusal notice")
            await app.workers.wait_for_complete()
            assert app.prompt.text == "during"

            await asyncio.to_thread(cluster.start_server)
            await wait_for(pilot, lambda: notices("reachable again") == 1, what="back notice")
            app.prompt.text = ""
            await type_and_send(pilot, "after")
            await wait_for(pilot, lambda: shown()[-1:] == ["Echo: after"], what="answer")
        stored = await services.manager.messages(app.me, session.id)
        assert [m.content for m in stored] == ["before", "Echo: before", "after", "Echo: after"]
    finally:
        await services.aclose()
