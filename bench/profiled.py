"""Run ``python -m mschat …`` under cProfile counting processor time, not wall time.

``python -m bench.profiled OUT.prof serve-discord …``: under load on a small
machine, wall-clock profiles charge a call for the time its process waited
for a core; processor time shows what the process itself spent.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    """Profile mschat's command line into the file named first."""
    out = sys.argv[1]
    sys.argv = ["mschat", *sys.argv[2:]]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module("mschat", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
