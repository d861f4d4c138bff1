"""The answer pipeline: from a question to a stored, streamed reply.

``SessionManager`` decides who may ask where (users, statuses, sessions) and
hands the question to :class:`Answerer`, which

1. waits for the session's turn (``turns.py``: a lock per session in this
   process, a lease row across processes for public sessions), yielding
   ``WaitingForTurn`` once if another ask holds it;
2. when the queue is in use (``queue.py``: a provider's ``max_concurrency``,
   ``queue.size``, ``queue.max_age``, or answering paused), waits for one of the
   provider's slots in the database's queue, yielding ``Queued`` (a
   ``WaitingForTurn``) once if none is free at once; a refusal (full, too long a
   wait, paused) is stored with the question as a failed reply;
3. stores the question and an empty ``streaming`` reply row in one transaction
   (the question is stored before any provider call), naming a still empty
   "New session" after its first question;
4. loads the recent history and fits it to the model's window (``context.py``,
   token framing counted once, in ``mschat.core.tokens``);
5. streams the provider's reply into its row (``writer.py``): content flushed
   every ``flush_interval``, the row's lease renewed by those flushes or by the
   turn's periodic renewal, and the row finished as complete, failed or
   interrupted, keeping whatever arrived.

Replies whose writer died are marked interrupted by ``recovery.py``.
"""

from mschat.core.answer.pipeline import Answerer, NewSession
from mschat.core.answer.recovery import claim_surfaces, recover_replies
from mschat.core.answer.turns import LEASE
from mschat.core.answer.writer import FLUSH_INTERVAL, WriterSettings

__all__ = [
    "FLUSH_INTERVAL",
    "LEASE",
    "Answerer",
    "NewSession",
    "WriterSettings",
    "claim_surfaces",
    "recover_replies",
]
