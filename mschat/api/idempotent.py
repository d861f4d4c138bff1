"""The ``Idempotency-Key`` header of the chat endpoints: a retry gets the first answer.

The rules (who claimed a key first, waiting, leases, expiry) are the core's
(``mschat.core.idempotency``); this module reads the header and records and
replays the endpoint's reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mschat.api import fields
from mschat.api.context import services_of
from mschat.api.replies import Reply
from mschat.api.shapes import IdempotencyHeader
from mschat.core.idempotency import Outcome, fingerprint
from mschat.core.models import User

#: answers a request: its reply and the response sent (streamed already, for streams)
Run = Callable[[], Awaitable[tuple[Reply, web.StreamResponse]]]
#: answers a retry with the first request's reply
Replay = Callable[[Reply], Awaitable[web.StreamResponse]]


async def once(
    request: web.Request, user: User, payload: Any, run: Run, replay: Replay
) -> web.StreamResponse:
    """Answer with ``run``, or, for a retry of a request with the same key, ``replay``.

    ``payload`` is what makes two requests the same (the JSON body, plus any header
    that changes the answer). A request refused before anything was stored keeps no
    record, so its retry runs again.
    """
    key = fields.headers(request, IdempotencyHeader).key
    if key is None:
        return (await run())[1]
    endpoint = f"{request.method} {request.path}"
    claim = await services_of(request).manager.idempotency.claim(
        user.id, key, endpoint, fingerprint(endpoint, payload)
    )
    if isinstance(claim, Outcome):
        return await replay(Reply.of_json(claim.response))
    try:
        reply, response = await run()
        stored = reply.message_id is not None or reply.reset
        outcome = Outcome(
            status=response.status,
            response=reply.to_json(),
            session_id=reply.session_id,
            message_id=reply.message_id,
        )
    except Exception:
        await claim.release()
        raise
    except BaseException:
        # cancelled (the server stops): the key is given back, so a retry asks again
        claim.release_now()
        raise
    if stored:
        await claim.finish(outcome)
    else:
        await claim.release()
    return response
