"""Building the prompt: system message plus the recent history that fits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mschat.core.errors import InvalidInput
from mschat.core.models import Message, MessageStatus
from mschat.core.tokens import PER_MESSAGE_OVERHEAD, estimate_tokens
from mschat.providers.base import ChatMessage

Counter = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Context:
    """The messages sent to the provider and what was left out."""

    messages: tuple[ChatMessage, ...]
    prompt_tokens: int
    dropped: int
    budget: int


def usable(message: Message) -> bool:
    """Whether a stored message belongs in the context (failed and empty replies don't)."""
    if message.role not in ("user", "assistant"):
        return False
    if message.role == "assistant":
        return message.status in (MessageStatus.COMPLETE, MessageStatus.INTERRUPTED) and bool(
            message.content
        )
    return True


def build_context(
    *,
    system_msg: str | None,
    history: Sequence[Message],
    context_window: int,
    max_tokens: int,
    model: str,
    count: Counter = estimate_tokens,
) -> Context:
    """Newest turns first until the budget (window minus max_tokens) is spent.

    ``history`` is in chronological order and ends with the new user message,
    which must always fit: otherwise the error names the model and the numbers.
    """
    budget = context_window - max_tokens
    used = 0
    system = None
    if system_msg:
        system = ChatMessage("system", system_msg)
        used += count(system_msg) + PER_MESSAGE_OVERHEAD
    turns = [m for m in history if usable(m)]
    kept: list[ChatMessage] = []
    dropped = 0
    for index in range(len(turns) - 1, -1, -1):
        message = turns[index]
        cost = count(message.content) + PER_MESSAGE_OVERHEAD
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
        kept.append(ChatMessage(message.role, message.content))
        used += cost
    kept.reverse()
    # a context must not open with an assistant turn after trimming
    while len(kept) > 1 and kept[0].role == "assistant":
        kept.pop(0)
        dropped += 1
    messages = ((system,) if system else ()) + tuple(kept)
    return Context(messages=messages, prompt_tokens=used, dropped=dropped, budget=budget)
