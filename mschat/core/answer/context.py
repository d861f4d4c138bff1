"""Building the prompt: system message plus the recent history that fits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from mschat.core.attachments import chat_message, estimate_files
from mschat.core.errors import InvalidInput
from mschat.core.models import Message, MessageStatus
from mschat.core.tokens import ESTIMATE, PromptCounter, estimate_message
from mschat.providers.base import ChatMessage

#: messages loaded per page while collecting history for the context
HISTORY_PAGE = 200


@dataclass(frozen=True, slots=True)
class Context:
    """The messages sent to the provider and what was left out."""

    messages: tuple[ChatMessage, ...]
    prompt_tokens: int
    dropped: int
    budget: int


def usable(message: Message) -> bool:
    """Whether a stored message belongs in the context (failed and empty replies, and
    what moderation flagged, don't)."""
    if message.role not in ("user", "assistant") or message.status == MessageStatus.FLAGGED:
        return False
    if message.role == "assistant":
        return message.status in (MessageStatus.COMPLETE, MessageStatus.INTERRUPTED) and bool(
            message.content
        )
    return True


async def load_history(
    page: list[Message],
    budget: int,
    older: Callable[[int], Awaitable[list[Message]]],
) -> list[Message]:
    """Recent messages, page by page, until they surely exceed the budget.

    ``page`` is the newest page, already loaded; ``older(before_id)`` loads the
    page before a message. Paging uses the estimate (which over-counts) with a
    2x margin, so the real tokenizer later sees every message that could fit.
    """
    messages: list[Message] = []
    spent = 0
    while True:
        messages[:0] = page
        spent += sum(estimate_message(m.content) + estimate_files(m) for m in page)
        if len(page) < HISTORY_PAGE or spent > 2 * budget:
            return messages
        page = await older(page[0].id)


def build_context(
    *,
    system_msg: str | None,
    history: Sequence[Message],
    context_window: int,
    max_tokens: int,
    model: str,
    counter: PromptCounter = ESTIMATE,
    files: Mapping[str, bytes] | None = None,
    vision: bool = False,
) -> Context:
    """Newest turns first until the budget (window minus max_tokens) is spent.

    ``history`` is in chronological order and ends with the new user message,
    which must always fit: otherwise the error names the model and the numbers.
    ``prompt_tokens`` is what ``counter`` says the messages sent cost. ``files``
    holds the contents of the messages' files (see ``attachments.wanted_files``);
    images are sent only to a model that sees (``vision``).
    """
    budget = context_window - max_tokens
    used = counter.fixed
    system = None
    if system_msg:
        system = ChatMessage("system", system_msg)
        used += counter.message(system)
    turns = [m for m in history if usable(m)]
    kept: list[ChatMessage] = []
    costs: list[int] = []
    dropped = 0
    for index in range(len(turns) - 1, -1, -1):
        message = chat_message(turns[index], files or {}, vision)
        cost = counter.message(message)
        if used + cost > budget:
            if not kept:
                raise InvalidInput(
                    f"message too long for model {model} "
                    f"({used + cost} tokens > {budget} available: context window "
                    f"{context_window} minus max_tokens {max_tokens})",
                    hint="shorten it, lower max_tokens or pick a model with a larger window",
                )
            dropped = index + 1
            break
        kept.append(message)
        costs.append(cost)
        used += cost
    kept.reverse()
    costs.reverse()
    # a context must not open with an assistant turn after trimming
    while len(kept) > 1 and kept[0].role == "assistant":
        kept.pop(0)
        used -= costs.pop(0)
        dropped += 1
    messages = ((system,) if system else ()) + tuple(kept)
    return Context(messages=messages, prompt_tokens=used, dropped=dropped, budget=budget)
