"""From a question to a stored reply: turn, question row, history, context, stream."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from mschat.core.answer.context import HISTORY_PAGE, Context, build_context, load_history
from mschat.core.answer.turns import Runner, Turn, Turns, new_owner, stamp
from mschat.core.answer.writer import ReplyWriter, WriterSettings
from mschat.core.errors import InvalidInput, MschatError, ProviderError
from mschat.core.events import Event, HistoryTrimmed, Started
from mschat.core.models import Message, Session, User
from mschat.core.titles import DEFAULT_TITLE, make_title
from mschat.core.tokens import counter_for
from mschat.providers.base import ChatRequest
from mschat.providers.registry import Registry, ResolvedModel
from mschat.store.contract import Store


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

    def answer(
        self,
        user: User,
        session: Session,
        text: str,
        *,
        created: bool = False,
        model: ResolvedModel | None = None,
        left_session: tuple[int | None, str] | None = None,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """Wait for the turn, store the question and stream the reply into its row.

        ``options``: ``system``, ``temperature``, ``max_tokens``, ``external_ref``.
        """

        def body(turn: Turn) -> AsyncIterator[Event]:
            return self._answer(
                turn,
                user,
                session,
                text,
                created=created,
                model=model,
                left_session=left_session,
                **options,
            )

        return self._in_turn(session, body)

    def answer_again(self, user: User, session: Session, **options: Any) -> AsyncIterator[Event]:
        """Replace the last reply of a session by a new answer to its last question."""

        async def body(turn: Turn) -> AsyncIterator[Event]:
            history = await self.run(self.store.messages, session.id, limit=2)
            question = next((m for m in reversed(history) if m.role == "user"), None)
            if question is None:
                raise InvalidInput("this session has no question to answer again")
            await self.run(self.store.delete_messages_from, session.id, question.id + 1)
            async for event in self._answer(
                turn, user, session, question.content, question=question, **options
            ):
                yield event

        return self._in_turn(session, body)

    async def _in_turn(
        self, session: Session, body: Callable[[Turn], AsyncIterator[Event]]
    ) -> AsyncIterator[Event]:
        """Run ``body`` holding the session's turn; says first if it had to wait."""
        turn = self.turns.turn(session)
        try:
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

    async def _answer(
        self,
        turn: Turn,
        user: User,
        session: Session,
        text: str,
        *,
        created: bool = False,
        model: ResolvedModel | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        external_ref: str | None = None,
        question: Message | None = None,
        left_session: tuple[int | None, str] | None = None,
    ) -> AsyncIterator[Event]:
        store = self.store
        resolved = model or await self.registry.resolve_async(session.model or user.model)
        # an empty session made by a front end (TUI, API) is named by its first question
        title = (
            make_title(text)
            if question is None and session.title == DEFAULT_TITLE and not session.message_count
            else None
        )

        def start_turn() -> tuple[bool, Message, Message, list[Message]]:
            # one transaction for the title, the question and the empty reply row
            with store.write():
                retitled = title is not None and store.retitle_untouched_session(
                    session.id, DEFAULT_TITLE, title
                )
                asked = question or store.add_message(
                    session_id=session.id,
                    author_id=user.id,
                    role="user",
                    content=text,
                    external_ref=external_ref,
                )
                asked.author_name = asked.author_name or user.name
                reply = store.add_reply(session.id, resolved.full_name, stamp(self.settings.lease))
            # the newest page of history, in the same trip to the store thread
            recent = store.messages(session.id, limit=HISTORY_PAGE, before_id=reply.id)
            return retitled, asked, reply, recent

        retitled, asked, reply, recent = await self.run(start_turn)
        if retitled and title is not None:
            session = dataclasses.replace(session, title=title)
        yield Started(
            session=session,
            user_message=asked,
            reply_id=reply.id,
            model=resolved.full_name,
            context_window=resolved.context_window,
            created_session=created,
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
        try:
            provider = self.registry.provider(resolved.provider)
            limit = max_tokens or user.max_tokens

            async def older(before_id: int) -> list[Message]:
                return await self.run(
                    store.messages, session.id, limit=HISTORY_PAGE, before_id=before_id
                )

            history = await load_history(recent, resolved.context_window - limit, older)

            def fit() -> Context:
                # a real tokenizer may load a model: keep it off the event loop
                return build_context(
                    system_msg=system if system is not None else session.system_msg,
                    history=history,
                    context_window=resolved.context_window,
                    max_tokens=limit,
                    model=resolved.full_name,
                    counter=counter_for(provider, resolved.model),
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
            request = ChatRequest(
                model=resolved.model,
                messages=context.messages,
                max_tokens=limit,
                temperature=temperature if temperature is not None else user.temperature,
                user=f"{user.kind}:{user.external_id}",
            )
            async for event in writer.stream(provider, request):
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
