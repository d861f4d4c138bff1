"""Offline token counting: the provider's tokenizer when it has one, else an estimate."""

from __future__ import annotations

#: tokens a chat template adds around every message (role markers, separators)
PER_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    """A conservative count: one token per 3 UTF-8 bytes.

    English averages about 4 characters a token and CJK about one character
    (3 bytes) a token, so this over-counts English and is close for CJK and code.
    """
    return len(text.encode("utf-8", "surrogatepass")) // 3 + 1
