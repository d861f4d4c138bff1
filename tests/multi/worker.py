"""One mschat instance in its own process, for the multi-instance tests.

    python -m tests.multi.worker DB USER ASKS [--one-at-a-time]

Opens the database and a manager (the scripted provider answers at once), prints
``ready``, waits for ``go`` on stdin, then asks ``ASKS`` questions at once as the
api user ``USER``, each in a new session. Prints one JSON report: the ids of what
was stored and the refusals by error type.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from typing import Any

from mschat.config import load_config
from mschat.core.errors import MschatError
from mschat.core.events import Completed, Started
from mschat.core.services import build_services
from tests.fakes.scripted_provider import ScriptedProvider


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Ask the questions once told to go; the report."""
    services = build_services(load_config(db=args.db), providers={"fake": ScriptedProvider("fake")})
    manager = services.manager
    manager.defaults["one_question_at_a_time"] = args.one_at_a_time
    report: dict[str, Any] = {"sessions": [], "messages": [], "refused": Counter()}
    try:
        user = await manager.user("api", args.user)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def ask(number: int) -> None:
            try:
                async for event in manager.ask(user, f"{args.user} {number}", new_session=True):
                    if isinstance(event, Started):
                        report["sessions"].append(event.session.id)
                        report["messages"].append(event.user_message.id)
                    elif isinstance(event, Completed):
                        report["messages"].append(event.message.id)
            except MschatError as error:
                report["refused"][type(error).__name__] += 1

        await asyncio.gather(*(ask(number) for number in range(args.asks)))
    finally:
        await services.aclose()
    return report


def main() -> None:
    """Parse the arguments, run, print the report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("user")
    parser.add_argument("asks", type=int)
    parser.add_argument("--one-at-a-time", action="store_true")
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
