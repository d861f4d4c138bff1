"""Offline token counting: the provider's tokenizer when it has one, else an estimate.

A prompt costs its messages, each with the framing a chat template puts around
it (role markers, separators), plus a fixed part once (the priming of the
reply). That framing is counted in exactly one place per counter: by the
provider's ``count_tokens`` when it has a tokenizer (it knows its template), or
by :func:`estimate_message` otherwise. Callers never add an overhead of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from mschat.providers.base import ChatMessage

if TYPE_CHECKING:
    from mschat.providers.base import Provider

#: tokens a chat template adds around every message, when no tokenizer says better
PER_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    """A conservative count: one token per 3 UTF-8 bytes.

    English averages about 4 characters a token and CJK about one character
    (3 bytes) a token, so this over-counts English and is close for CJK and code.
    """
    return len(text.encode("utf-8", "surrogatepass")) // 3 + 1


def estimate_message(content: str) -> int:
    """The estimated cost of one message in a prompt, its framing included."""
    return estimate_tokens(content) + PER_MESSAGE_OVERHEAD


class PromptCounter:
    """What a prompt costs: each message with its framing, plus a fixed part once."""

    # a plain class, not a dataclass: this module is on the cold path of `mschat ask`
    __slots__ = ("fixed", "message")

    def __init__(self, message: Callable[[ChatMessage], int], fixed: int = 0) -> None:
        self.message = message
        self.fixed = fixed

    def prompt(self, messages: Iterable[ChatMessage]) -> int:
        """The cost of a whole prompt made of ``messages``."""
        return self.fixed + sum(self.message(m) for m in messages)


#: what an image costs in a prompt when nothing better is known: OpenAI's price of a
#: detailed image at its usual size (85 base + 170 per 512-pixel tile, 6 tiles)
IMAGE_TOKENS = 1105


def estimate_chat_message(message: ChatMessage) -> int:
    """The estimated cost of a message to send: its text, framing and images."""
    return estimate_message(message.content) + IMAGE_TOKENS * len(message.images)


#: the counter of a provider without an offline tokenizer
ESTIMATE = PromptCounter(estimate_chat_message)


def counter_for(provider: Provider, model: str) -> PromptCounter:
    """The provider's own tokenizer when it has one offline, else the estimate.

    The provider counts a list of messages with their framing; one message's
    cost is then its count alone minus the count of an empty prompt (the part
    every prompt pays once).
    """
    count = getattr(provider, "count_tokens", None)
    if count is None:
        return ESTIMATE
    try:
        fixed = count(model, [])
    except Exception:
        fixed = None
    if fixed is None:
        return ESTIMATE

    def message(item: ChatMessage) -> int:
        total = count(model, [item])
        images = IMAGE_TOKENS * len(item.images)  # the tokenizer counts text only
        return (
            int(total) - fixed if total is not None else estimate_message(item.content)
        ) + images

    return PromptCounter(message, int(fixed))
