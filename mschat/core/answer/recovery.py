"""Replies whose writer is gone are marked interrupted.

A process killed mid-reply (SIGKILL, power loss) cannot mark its own reply. Its
row stays ``streaming`` with a lease its writer no longer renews (see
``writer.py``); once that lease has expired the writer is provably gone, and any
process may mark the reply ``interrupted``:

- every process runs :func:`recover_replies` when it starts (``build_services``);
  it costs one query on the small partial index of streaming replies;
- long-running front ends (API server, Discord bot, TUI) call
  ``SessionManager.watch_replies()`` once their event loop runs: the manager
  then repeats the recovery every half lease, so a dead writer's reply is
  noticed within about one lease time, until ``SessionManager.aclose()``.

A reply the Discord bot was streaming is different: while the message showing it
can still be edited (its "surface", ``Store.save_reply_surface``), it is held
for a bot, which claims it (:func:`claim_surfaces`, one process per reply) and
has the core answer it again (``SessionManager.resume_reply``) into the same
message; a surface too old is claimed to say the reply was interrupted.
"""

from __future__ import annotations

from datetime import timedelta

from mschat.core.answer.turns import stamp
from mschat.store.contract import ReplySurface, Store

#: replies made before reply leases existed have none; they count as gone this late
LEGACY_STALE_AFTER = timedelta(minutes=30)
REASON = "interrupted: the process writing this reply stopped"


def recover_replies(store: Store) -> int:
    """Mark replies whose writer's lease expired as interrupted; returns how many."""
    return store.interrupt_stale_replies(stamp(), stamp(-LEGACY_STALE_AFTER), REASON)


def claim_surfaces(store: Store, lease: timedelta) -> list[ReplySurface]:
    """Claim the surfaces of replies whose writer is gone (each for this process only);
    a reply to resume is held by this process for ``lease``."""
    return store.claim_reply_surfaces(stamp(), stamp(lease))
