"""From a question to a stored reply: turn, question row, history, context, stream."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from mschat.core.answer.context import HISTORY_PAGE, Context, build_context, load_history
from mschat.core.answer.queue import Queue, Ticket
from mschat.core.answer.turns import Runner, Turn, Turns, new_owner, stamp
from mschat.core.answer.writer import ReplyWriter, WriterSettings
from mschat.core.attachments import Prepared, check_visible, wanted_files
from mschat.core.errors import (
    Busy,
    InvalidInput,
    MschatError,
    Paused,
    ProviderError,
    QuestionFlagged,
    QueueFull,
    QueueTimeout,
)
from mschat.core.events import Event, HistoryTrimmed, Started
from mschat.core.models import Message, Session, User
from mschat.core.moderation import Moderations
from mschat.core.titles import DEFAULT_TITLE, FLAGGED_TITLE, make_title
from mschat.core.tokens import counter_for
from mschat.providers.base import ChatRequest
from mschat.providers.registry import Registry, ResolvedModel
from mschat.store.contract import Store

if TYPE_CHECKING:
    from mschat.core.tools.loop import Approve
    from mschat.core.tools.toolbox import Toolbox

#: checks run first in the transaction that stores a question, on the store thread;
#: they refuse the question by raising (see ``eligibility.admission``)
Admit = Callable[[], None]


@dataclasses.dataclass(frozen=True, slots=True)
class NewSession:
    """A session an ask creates in the transaction that stores its question.

    ``values`` are the session's columns (``Store.create_session``). With
    ``user_changes``, the same transaction changes the asking user too, and makes
    the new session their current one (attach).
    """

    values: dict[str, Any]
    user_changes: dict[str, Any] | None = None

    @property
    def public(self) -> bool:
        """Whether the session starts public (then its lease is written with it)."""
        return bool(self.values.get("public"))


def _create(store: Store, user: User, new: NewSession, lease: dict[str, str]) -> Session:
    """Insert the new session (in the caller's transaction) and attach the user to it."""
    session = store.create_session(**new.values, **lease)
    if new.user_changes is not None:
        store.update_user(user.id, current_session_id=session.id, **new.user_changes)
    return session


class Answerer:
    """Answers questions in sessions the caller already checked the user may use."""

    def __init__(
        self,
        store: Store,
        run: Runner,
        registry: Registry,
        settings: WriterSettings | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.registry = registry
        self.settings = settings or WriterSettings()
        self.turns = Turns(store, run, owner or new_owner(), lease=self.settings.lease)
        self.moderations = Moderations(registry)
        self.queue = Queue(
            store, run, lambda: getattr(registry, "config", None), self.settings.lease
        )
        #: the MCP tools offered to models that take them (``Services`` sets it)
        self.tools: Toolbox | None = None

    def answer(
        self,
        user: User,
        session: Session | NewSession,
        text: str,
        *,
        model: ResolvedModel | None = None,
        left_session: tuple[int | None, str] | None = None,
        admit: Admit | None = None,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """Wait for the turn, store the question and stream the reply into its row.

        ``session`` is a session to ask in, or a :class:`NewSession` to create with
        the question. ``admit`` runs first in the transaction that stores the
        question and may refuse it (see ``eligibility.admission``): then nothing
        is stored. ``options``: ``system``, ``temperature``, ``max_tokens``,
        ``external_ref``.
        """

        def body(turn: Turn) -> AsyncIterator[Event]:
            return self._answer(
                turn,
                user,
                session,
                text,
                model=model,
                left_session=left_session,
                admit=admit,
                **options,
            )

        return self._in_turn(session if isinstance(session, Session) else None, body)

    def answer_again(
        self,
        user: User,
        session: Session,
        *,
        admit: Admit | None = None,
        holding: int | None = None,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """Replace the last reply of a session by a new answer to its last question.

        ``holding``: a streaming reply this process claimed (a dead writer's, see
        ``recovery.py``); its lease is renewed while the answer waits for its turn
        or a slot, so that no other process claims it meanwhile.
        """

        async def body(turn: Turn) -> AsyncIterator[Event]:
            history = await self.run(self.store.messages, session.id, limit=2)
            question = next((m for m in reversed(history) if m.role == "user"), None)
            if question is None:
                raise InvalidInput("this session has no question to answer again")
            async for event in self._answer(
                turn, user, session, question.content, question=question, admit=admit, **options
            ):
                yield event

        events = self._in_turn(session, body)
        return events if holding is None else self._holding(holding, events)

    async def _holding(self, reply_id: int, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """Pass ``events`` on, renewing a claimed reply's lease until ``Started``.

        A task renews, not this generator: a consumer may be slow to ask for the
        next event, and the wait may outlast several leases.
        """
        lease = self.settings.lease

        async def keep() -> None:
            while True:
                await asyncio.sleep(lease.total_seconds() / 3)
                # a database away now is retried at the next renewal
                with contextlib.suppress(Exception):
                    await self.run(self.store.renew_reply_lease, reply_id, stamp(lease))

        keeper = asyncio.create_task(keep(), name=f"mschat-hold-{reply_id}")
        try:
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    if isinstance(event, Started):
                        keeper.cancel()  # the claimed reply is gone: a writer holds the new one
                    yield event
        finally:
            keeper.cancel()

    async def _in_turn(
        self, session: Session | None, body: Callable[[Turn], AsyncIterator[Event]]
    ) -> AsyncIterator[Event]:
        """Run ``body`` holding the session's turn; says first if it had to wait.

        Without a session, ``body`` creates one and takes its turn then.
        """
        turn = self.turns.turn(session)
        try:
            if session is not None:
                async with contextlib.aclosing(turn.take()) as waits:
                    async for waiting in waits:
                        yield waiting
            async for event in body(turn):
                yield event
        except BaseException:
            # the task may be cancelled: give the turn back without awaiting
            turn.release_now()
            raise
        await turn.release()

    async def _resolve(
        self, user: User, target: Session | NewSession, model: ResolvedModel | None
    ) -> ResolvedModel:
        """The model that answers: the given one, else the session's or the user's."""
        if model is not None:
            return model
        if isinstance(target, NewSession):
            return await self.registry.resolve_async(target.values.get("model"))
        return await self.registry.resolve_async(target.model or user.model)

    async def _answer(
        self,
        turn: Turn,
        user: User,
        target: Session | NewSession,
        text: str,
        *,
        model: ResolvedModel | None = None,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """Wait in the queue when it is in use (see ``queue.py``), then answer.

        A question the queue refuses is stored all the same, its reply marked
        failed with the reason.
        """
        ticket: Ticket | None = options.pop("ticket", None)
        try:
            resolved = await self._resolve(user, target, model)
            question: Message | None = options.get("question")
            files = [info for info, _ in options.get("attachments", ())]
            check_visible(
                question.attachments if question is not None else files,
                resolved.full_name,
                self.registry.vision(resolved.provider, resolved.model),
            )
        except BaseException:
            if ticket is not None:
                ticket.done()
            raise
        rules = self.queue.rules(resolved.provider)
        if not rules.active:
            if ticket is not None:
                ticket.done()
            async for event in self._answer_now(turn, user, target, text, resolved, **options):
                yield event
            return
        place = self.queue.place(user, resolved.provider, ticket)
        session_id = target.id if isinstance(target, Session) else 0
        try:
            refused: Busy | None = None
            try:
                async with contextlib.aclosing(place.wait(session_id, rules)) as waits:
                    async for waiting in waits:
                        yield waiting
            except (Paused, QueueFull, QueueTimeout) as exc:
                refused = exc
            async for event in self._answer_now(
                turn, user, target, text, resolved, refused=refused, **options
            ):
                yield event
        except BaseException:
            place.leave_now()  # cancelled: no awaiting
            raise
        await place.leave()

    async def _answer_now(
        self,
        turn: Turn,
        user: User,
        target: Session | NewSession,
        text: str,
        resolved: ResolvedModel,
        *,
        refused: Busy | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        external_ref: str | None = None,
        question: Message | None = None,
        left_session: tuple[int | None, str] | None = None,
        admit: Admit | None = None,
        attachments: Sequence[Prepared] = (),
        approve: Approve | None = None,
    ) -> AsyncIterator[Event]:
        store = self.store
        new = target if isinstance(target, NewSession) else None
        # an empty session made by a front end (TUI, API) is named by its first question
        title = (
            make_title(text)
            if isinstance(target, Session)
            and question is None
            and target.title == DEFAULT_TITLE
            and not target.message_count
            else None
        )

        def start_turn() -> tuple[Session, Message, Message, list[Message]]:
            # one transaction for the checks, the session or its title, the question
            # and the empty reply row: a refused question leaves nothing behind (a
            # plain question is one already: add_question)
            plain = admit is None and new is None and title is None and question is None
            with contextlib.nullcontext() if plain else store.write():
                if admit is not None:
                    admit()
                if new is not None:
                    session = _create(store, user, new, turn.lease_columns(new.public))
                else:
                    assert isinstance(target, Session)
                    session = target
                    if title is not None and store.retitle_untouched_session(
                        session.id, DEFAULT_TITLE, title
                    ):
                        session = dataclasses.replace(session, title=title)
                if question is not None:
                    # answered again: the old reply goes in the same transaction
                    store.delete_messages_from(session.id, question.id + 1)
                lease = stamp(self.settings.lease)
                if question is None:
                    asked, reply = store.add_question(
                        session.id,
                        user.id,
                        text,
                        model=resolved.full_name,
                        lease_until=lease,
                        external_ref=external_ref,
                        attachments=attachments,
                    )
                else:
                    asked = question
                    reply = store.add_reply(session.id, resolved.full_name, lease)
                asked.author_name = asked.author_name or user.name
            if new is not None:
                return session, asked, reply, [asked]  # a new session holds just the question
            # the newest page of history, in the same trip to the store thread
            recent = store.messages(session.id, limit=HISTORY_PAGE, before_id=reply.id)
            return session, asked, reply, recent

        session, asked, reply, recent = await self.run(start_turn)
        if new is not None:
            await turn.took(session)
        yield Started(
            session=session,
            user_message=asked,
            reply_id=reply.id,
            model=resolved.full_name,
            context_window=resolved.context_window,
            created_session=new is not None,
            left_session_id=left_session[0] if left_session else None,
            left_reason=left_session[1] if left_session else None,
        )
        writer = ReplyWriter(
            store,
            self.run,
            self.settings,
            reply=reply,
            user_id=user.id,
            provider=resolved.provider,
            model=resolved.model,
        )
        turn.keep(writer.renew_if_idle)
        if refused is not None:
            yield await writer.decline(refused)
            return
        try:
            if self.moderations.enabled:
                try:
                    await self.moderations.check_question(text)
                except QuestionFlagged as flagged:
                    if new is not None or title is not None:
                        # titled after the flagged text: it must not show in session lists
                        await self.run(store.update_session, session.id, title=FLAGGED_TITLE)
                    yield await writer.refuse(flagged, asked.id)
                    return
                writer.check = self.moderations.check_answer
            provider = self.registry.provider(resolved.provider)
            limit = max_tokens or user.max_tokens

            async def older(before_id: int) -> list[Message]:
                return await self.run(
                    store.messages, session.id, limit=HISTORY_PAGE, before_id=before_id
                )

            history = await load_history(recent, resolved.context_window - limit, older)
            vision = self.registry.vision(resolved.provider, resolved.model)
            given = {info.sha256: data for info, data in attachments}
            wanted = [h for h in wanted_files(history, vision) if h not in given]
            files = {**given, **(await self.run(store.attachment_data, wanted) if wanted else {})}

            def fit() -> Context:
                # a real tokenizer may load a model: keep it off the event loop
                return build_context(
                    system_msg=system if system is not None else session.system_msg,
                    history=history,
                    context_window=resolved.context_window,
                    max_tokens=limit,
                    model=resolved.full_name,
                    counter=counter_for(provider, resolved.model),
                    files=files,
                    vision=vision,
                )

            context = await asyncio.to_thread(fit)
            writer.prompt_tokens = context.prompt_tokens
            if context.dropped:
                yield HistoryTrimmed(
                    dropped=context.dropped,
                    kept=len(context.messages),
                    prompt_tokens=context.prompt_tokens,
                    budget=context.budget,
                )
            tools = (
                None
                if self.tools is None
                else await self.tools.loop_for(
                    user=user,
                    takes_tools=self.registry.takes_tools(resolved.provider, resolved.model),
                    approve=approve,
                    store=store,
                    run=self.run,
                    reply_id=reply.id,
                )
            )
            request = ChatRequest(
                model=resolved.model,
                messages=context.messages,
                max_tokens=limit,
                temperature=temperature if temperature is not None else user.temperature,
                user=f"{user.kind}:{user.external_id}",
                tools=tools.specs if tools is not None else (),
            )
            async for event in writer.stream(provider, request, tools):
                yield event
        except MschatError as error:
            yield await writer.fail(error)
        except (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt):
            writer.interrupt()
            raise
        except Exception as exc:
            yield await writer.fail(
                ProviderError(f"unexpected error: {exc!r}", kind="bad_response")
            )
