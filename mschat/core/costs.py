"""What answers cost: the price table and the cost of stored token counts.

Costs are computed when they are read, from the tokens stored with every reply
(``messages.tokens_in/tokens_out``) and every provider request (``api_calls``),
times the price table in effect. No price is stored with a request: the table
holds list prices that change rarely and that an operator edits mostly to
correct or complete them, and a correction then applies to the whole history,
including requests made before the model had a price (or before mschat knew
costs at all). The price of a past request is therefore the current one; the
README says so.

A model without a price has an unknown cost, shown as "—" and never as 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mschat.core.errors import InvalidInput
from mschat.store.contract import UsageTotal

MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """What a model costs, in currency units per million tokens."""

    input: float
    output: float

    def of(self, tokens_in: int, tokens_out: int) -> float:
        """The cost of these tokens."""
        return (tokens_in * self.input + tokens_out * self.output) / MILLION


#: OpenAI's list prices (USD per million tokens) when this table was written;
#: ``[prices."openai/MODEL"]`` overrides any of them
DEFAULT_PRICES: dict[str, Price] = {
    "openai/gpt-4o": Price(2.50, 10.00),
    "openai/gpt-4o-mini": Price(0.15, 0.60),
    "openai/gpt-4.1": Price(2.00, 8.00),
    "openai/gpt-4.1-mini": Price(0.40, 1.60),
    "openai/gpt-4.1-nano": Price(0.10, 0.40),
    "openai/o1": Price(15.00, 60.00),
    "openai/o3": Price(2.00, 8.00),
    "openai/o3-mini": Price(1.10, 4.40),
    "openai/o4-mini": Price(1.10, 4.40),
}


@dataclass(frozen=True, slots=True)
class Cost:
    """A sum of costs: the priced part, and whether some usage has no known price."""

    amount: float = 0.0
    #: some usage had a price (and token counts)
    priced: bool = False
    #: some usage had no price, or no token counts: its cost is unknown
    unknown: bool = False

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.amount + other.amount, self.priced or other.priced, self.unknown or other.unknown
        )

    @property
    def known(self) -> bool:
        """Whether the whole cost is known (nothing used counts as known: 0)."""
        return not self.unknown

    def text(self, currency: str) -> str:
        """The cost for people: ``0.0123 USD``, ``—`` when unknown, or both parts."""
        if self.unknown and not self.priced:
            return "—"
        shown = f"{_figure(self.amount)} {currency}"
        return f"{shown} + — (unpriced models)" if self.unknown else shown

    def as_json(self) -> float | None:
        """The amount, or None when any part is unknown (machine-readable output)."""
        return None if self.unknown else round(self.amount, 8)


def _figure(amount: float) -> str:
    # small amounts are the rule (one answer costs fractions of a cent)
    if amount == 0:
        return "0.00"
    if amount < 0.01:
        return f"{amount:.6f}".rstrip("0")
    return f"{amount:.4f}"


class Prices:
    """The price table: built-in list prices under the configured ``[prices]``."""

    def __init__(self, configured: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.table: dict[str, Price] = dict(DEFAULT_PRICES)
        for name, price in (configured or {}).items():
            self.table[name] = Price(float(price["input"]), float(price["output"]))

    def price(self, provider: str | None, model: str | None) -> Price | None:
        """The price of ``provider/model``, if the table has one."""
        if not provider or not model:
            return None
        return self.table.get(f"{provider}/{model}")

    def of_reply(
        self, full_model: str | None, tokens_in: int | None, tokens_out: int | None
    ) -> Cost:
        """The cost of one stored reply (its ``provider/model`` and token counts)."""
        provider, _, model = (full_model or "").partition("/")
        price = self.price(provider, model)
        if price is None or (tokens_in is None and tokens_out is None):
            return Cost(unknown=True)
        return Cost(price.of(tokens_in or 0, tokens_out or 0), priced=True)

    def of_usage(self, totals: Iterable[UsageTotal]) -> Cost:
        """The cost of the provider requests in ``totals`` (``Store.usage_totals``)."""
        cost = Cost()
        for total in totals:
            price = self.price(total.provider, total.model)
            if price is None:
                if total.tokens_in or total.tokens_out or total.unmetered:
                    cost += Cost(unknown=True)
                continue
            if total.tokens_in or total.tokens_out:
                cost += Cost(price.of(total.tokens_in, total.tokens_out), priced=True)
            if total.unmetered:
                cost += Cost(unknown=True)
        return cost

    def per_user(self, totals: Iterable[UsageTotal]) -> dict[int | None, Cost]:
        """The cost of ``totals`` per user id."""
        grouped: dict[int | None, list[UsageTotal]] = {}
        for total in totals:
            grouped.setdefault(total.user_id, []).append(total)
        return {user_id: self.of_usage(rows) for user_id, rows in grouped.items()}


@dataclass(frozen=True, slots=True)
class Spending:
    """The usage and cost of a user's or a session's answers (``manager.spending``)."""

    totals: list[UsageTotal]
    cost: Cost
    currency: str

    @property
    def calls(self) -> int:
        """How many provider requests."""
        return sum(t.calls for t in self.totals)

    @property
    def tokens_in(self) -> int:
        """Prompt tokens of those requests."""
        return sum(t.tokens_in for t in self.totals)

    @property
    def tokens_out(self) -> int:
        """Completion tokens of those requests."""
        return sum(t.tokens_out for t in self.totals)

    @property
    def text(self) -> str:
        """One line: the cost, then requests and tokens."""
        return (
            f"{self.cost.text(self.currency)} ({self.calls} requests, "
            f"{self.tokens_in} tokens in, {self.tokens_out} out)"
        )

    def as_json(self) -> dict[str, Any]:
        """Machine-readable: cost (null when unknown), currency, requests and tokens."""
        return {
            "cost": self.cost.as_json(),
            "currency": self.currency,
            "requests": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }


_PERIOD = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> str:
    """The start of a period as stored times are: ``7d``, ``24h``, ``30m``, ``2w``, ``90s``
    ago, or an ISO date or time (UTC unless it says otherwise). InvalidInput otherwise.
    """
    now = now or datetime.now(UTC)
    spec = text.strip().lower()
    match = _PERIOD.fullmatch(spec)
    if match:
        try:
            start = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except (OverflowError, ValueError):  # before year 1 (or digits beyond count): all
            start = datetime.min.replace(tzinfo=UTC)
    else:
        try:
            start = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInput(
                f"--since must be a period like 7d, 24h, 30m, 2w, 90s or a date like 2026-01-31, "
                f"not {text!r}"
            ) from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    return start.astimezone(UTC).isoformat(timespec="microseconds")
