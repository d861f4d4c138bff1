"""An instance that streams one slow reply under a short lease until it is killed.

``python -m tests.multi.outage_writer DB_URL LEASE_SECONDS``: asks one question in
a new session with the model MSCHAT_HOME's config names, and prints ``started
REPLY_ID`` once the question and its reply row are stored.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from mschat.config import load_config
from mschat.core.events import Started
from mschat.core.manager import SessionManager
from mschat.core.services import build_services


async def main(url: str, lease: float) -> None:
    """Ask, and stream the reply into its row for as long as the model talks."""
    services = build_services(load_config(db=url))
    manager = SessionManager(services.store, services.registry, lease=timedelta(seconds=lease))
    user = await manager.local_user()
    async for event in manager.ask(user, "a question for a slow model", new_session=True):
        if isinstance(event, Started):
            print(f"started {event.reply_id}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
