"""Chatting in the TUI: create, send, stream, stop, regenerate, fork, failure."""

from __future__ import annotations

import asyncio

from mschat.core.errors import ProviderError
from mschat.core.events import Queued, WaitingForTurn
from mschat.core.models import MessageStatus
from mschat.core.services import Services
from mschat.tui.widgets.chat import LiveReply, MessageView, freeze_point
from mschat.tui.widgets.status import WAITING
from tests.fakes.scripted_provider import ScriptedProvider
from tests.tui.conftest import SIZE, build_app, ready, type_and_send, wait_for


def shown(app) -> list[str]:
    return [v.message.content for v in app.chat.query(MessageView)]


async def test_send_creates_a_session_and_streams_the_reply(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.session is None
        await type_and_send(pilot, "hello there")
        await wait_for(pilot, lambda: "Echo: hello there" in shown(app), what="reply")
        assert app.session is not None
        assert app.prompt.text == ""
        assert shown(app) == ["hello there", "Echo: hello there"]
        assert [s.id for s in app.sidebar.sessions] == [app.session.id]
        assert app.sidebar.highlighted == 0
        assert app.status.state == "idle"
        assert app.status.tokens is not None and app.status.context_window == 4096
        stored = await services.manager.messages(app.me, app.session.id)
        assert [m.status for m in stored] == ["complete", "complete"]


async def test_stop_keeps_the_partial_reply_as_interrupted(
    services: Services, provider: ScriptedProvider
):
    gate = asyncio.Event()  # never set: the reply hangs after its first chunk
    provider.push(chunks=["partial answer", " never"], gate=gate)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "long question")
        await wait_for(
            pilot,
            lambda: app.query(LiveReply) and app.status.state == "streaming",
            what="streaming",
        )
        live = app.query_one(LiveReply)
        await wait_for(pilot, lambda: live.text == "partial answer", what="first chunk")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.query(LiveReply), what="live reply finished")
        views = list(app.chat.query(MessageView))
        assert views[-1].message.status == MessageStatus.INTERRUPTED
        assert views[-1].message.content == "partial answer"
        assert app.status.state == "interrupted"
        session_id = app.session.id

        async def stored_status() -> str:
            messages = await services.manager.messages(app.me, session_id)
            return messages[-1].status

        status = ""
        for _ in range(200):
            status = await stored_status()
            if status == MessageStatus.INTERRUPTED:
                break
            await pilot.pause(0.02)
        assert status == MessageStatus.INTERRUPTED


async def test_regenerate_replaces_the_last_reply(services: Services, provider: ScriptedProvider):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "question")
        await wait_for(pilot, lambda: "Echo: question" in shown(app), what="first reply")
        provider.push(chunks=["second ", "take"])
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "second take" in shown(app), what="regenerated reply")
        assert shown(app) == ["question", "second take"]
        stored = await services.manager.messages(app.me, app.session.id)
        assert [m.content for m in stored] == ["question", "second take"]


async def test_edit_a_past_question_forks_and_resends(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "first question")
        await wait_for(pilot, lambda: len(shown(app)) == 2, what="first reply")
        original = app.session.id
        await type_and_send(pilot, "second question")
        await wait_for(pilot, lambda: len(shown(app)) == 4, what="second reply")
        # select the first question (up/down in the messages) and edit it
        await pilot.press("ctrl+t")
        for _ in range(4):  # the first press selects the last message
            await pilot.press("up")
        assert app.chat.selected.message.content == "first question"
        await pilot.press("ctrl+o")
        editor = app.screen.query_one("#value")
        editor.text = "better question"
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: app.session.id != original and "Echo: better question" in shown(app),
            what="fork reply",
        )
        assert shown(app) == ["better question", "Echo: better question"]
        kept = await services.manager.messages(app.me, original)
        assert len(kept) == 4  # the original is untouched
        assert {s.id for s in app.sidebar.sessions} >= {original, app.session.id}


async def test_provider_failure_is_shown_and_the_prompt_kept(
    services: Services, provider: ScriptedProvider
):
    provider.push(chunks=["half"], error=ProviderError("upstream exploded", kind="server"))
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "will fail")
        await wait_for(pilot, lambda: app.status.state == "failed", what="failure")
        await wait_for(pilot, lambda: not app.query(LiveReply), what="live reply finished")
        failed = list(app.chat.query(MessageView))[-1]
        assert failed.message.status == MessageStatus.FAILED
        assert "upstream exploded" in (failed.message.error or "")
        assert failed.has_class("-failed")
        assert app.prompt.text == "will fail"  # ready to resend
        assert any("upstream exploded" in n.message for n in app._notifications)


async def test_an_error_before_storing_keeps_the_prompt(services: Services):
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "hello")
        await wait_for(pilot, lambda: len(shown(app)) == 2, what="reply")
        session_id = app.session.id
        await services.manager.set_session_model(app.me, session_id, "fake/other")
        services.config.providers.clear()  # no provider: resolving the model fails
        services.registry.provider_configs.clear()
        await type_and_send(pilot, "typed text")
        await wait_for(
            pilot,
            lambda: any(
                "provider" in n.message or "model" in n.message for n in app._notifications
            ),
            what="error notice",
        )
        await app.workers.wait_for_complete()
        assert app.prompt.text == "typed text"


def test_freeze_point_splits_before_the_open_last_block():
    assert freeze_point("one paragraph, still open") == 0
    assert freeze_point("first.\n\nsecond, open") == len("first.\n\n")
    text = "intro\n\n```python\nprint(1)\n"  # an unclosed fence is the open block
    assert freeze_point(text) == len("intro\n\n")
    assert freeze_point("- a\n- b\n") == 0  # one list, still open


def lines_of(view: MessageView | LiveReply) -> list[str]:
    return ["".join(segment.text for segment in strip) for strip in view._strips]


async def test_live_reply_renders_finished_blocks_once_and_hands_them_over(
    services: Services, provider: ScriptedProvider
):
    gate = asyncio.Event()
    first = "Intro paragraph.\n\n```python\nprint(1)\n```\n\nStill typ"
    provider.push(chunks=[first, "ing. The end."], gate=gate)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "show me")
        await wait_for(pilot, lambda: app.query(LiveReply), what="live reply")
        live = app.query_one(LiveReply)
        await wait_for(pilot, lambda: live.tail == "Still typ", what="blocks frozen")
        assert "".join(live.blocks) == "Intro paragraph.\n\n```python\nprint(1)\n```\n\n"
        await wait_for(pilot, lambda: any("Still typ" in line for line in lines_of(live)))
        drawn = "\n".join(lines_of(live))
        assert "Intro paragraph." in drawn and "print(1)" in drawn and "```" not in drawn
        gate.set()
        await wait_for(pilot, lambda: not app.query(LiveReply), what="live reply finished")
        view = list(app.chat.query(MessageView))[-1]
        assert view.message.content == first + "ing. The end."
        adopted = lines_of(view)
        assert any("Still typing. The end." in line for line in adopted)
        view.invalidate()  # the lines a fresh Markdown render gives are the same
        view._lines(view.content_size.width)
        assert lines_of(view) == adopted


def wrap_ask(services: Services, before) -> None:  # type: ignore[no-untyped-def]
    """Run ``before(session_id)`` inside each ask, then the core's own ask; events pass through."""
    manager = services.manager
    ask = manager.ask

    async def wrapped(user, text, **options):  # type: ignore[no-untyped-def]
        async for event in before(options.get("session_id")):
            yield event
        async for event in ask(user, text, **options):
            yield event

    manager.ask = wrapped  # type: ignore[method-assign]


async def test_waiting_for_another_process_is_shown(services: Services, provider: ScriptedProvider):
    turn = asyncio.Event()

    async def wait_turn(session_id):  # type: ignore[no-untyped-def]
        # what the core yields while another process answers in this public session
        yield WaitingForTurn(session_id)
        await turn.wait()

    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "first")
        await wait_for(pilot, lambda: len(shown(app)) == 2, what="first reply")
        wrap_ask(services, wait_turn)
        await type_and_send(pilot, "second")
        await wait_for(pilot, lambda: app.status.state == WAITING, what="waiting state")
        assert any("waiting for another reply" in n.message for n in app._notifications)
        assert app.prompt.text == "second"  # nothing stored yet
        turn.set()
        await wait_for(pilot, lambda: "Echo: second" in shown(app), what="second reply")
        await wait_for(pilot, lambda: app.status.state == "idle", what="idle again")


async def test_the_place_in_line_is_the_status_and_one_notice(
    services: Services, provider: ScriptedProvider
):
    moved = asyncio.Event()
    turn = asyncio.Event()

    async def wait_in_line(session_id):  # type: ignore[no-untyped-def]
        # what the core yields while the question waits in the queue for a slot
        yield Queued(session_id, "fake", 3)
        await moved.wait()
        yield Queued(session_id, "fake", 2)
        await turn.wait()

    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await type_and_send(pilot, "first")
        await wait_for(pilot, lambda: len(shown(app)) == 2, what="first reply")
        wrap_ask(services, wait_in_line)
        await type_and_send(pilot, "second")
        await wait_for(
            pilot, lambda: app.status.state == "Waiting in line: 2 ahead of you", what="in line"
        )
        moved.set()
        await wait_for(
            pilot, lambda: app.status.state == "Waiting in line: 1 ahead of you", what="moved"
        )
        assert [n.message for n in app._notifications if "line" in n.message] == [
            "Waiting in line: 2 ahead of you"
        ]
        turn.set()
        await wait_for(pilot, lambda: "Echo: second" in shown(app), what="second reply")
        await wait_for(pilot, lambda: app.status.state == "idle", what="idle again")


async def test_an_empty_session_shows_the_title_from_its_first_question(
    services: Services, provider: ScriptedProvider
):
    async def retitle(session_id):  # type: ignore[no-untyped-def]
        # the core names an empty session from its first question when storing it
        session = services.store.get_session(session_id)
        if session.message_count == 0:
            services.store.update_session(session_id, title="Say hello")
        return
        yield

    gate = asyncio.Event()
    provider.push(chunks=["Hello", "!"], gate=gate)
    app = build_app(services)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.session is not None, what="new session")
        assert app.sidebar.sessions[0].title == "New session"
        wrap_ask(services, retitle)
        await type_and_send(pilot, "Say hello")
        await wait_for(pilot, lambda: app.query(LiveReply), what="streaming")
        # shown while the reply streams, not only after it
        assert app.sidebar.sessions[0].title == "Say hello"
        assert "Say hello" in str(app.sidebar.get_option_at_index(0).prompt)
        assert app.session.title == "Say hello"
        gate.set()
        await wait_for(pilot, lambda: not app.query(LiveReply), what="reply finished")
        assert app.sidebar.sessions[0].title == "Say hello"
