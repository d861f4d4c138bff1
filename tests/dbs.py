"""Raw SQL in tests, on either backend (``?`` placeholders, one transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mschat.store import Store


def sql(store: Store, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run ``query`` in a write transaction of ``store``; the rows it returns, if any."""
    if store.backend == "postgresql":
        query = query.replace("?", "%s")
    with store.write() as conn:
        cursor = conn.execute(query, params)  # type: ignore[attr-defined]
        if cursor.description is None:
            return []
        return [tuple(row) for row in cursor.fetchall()]
