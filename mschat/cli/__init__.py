"""The ``mschat`` command line: one module per command group, its renderers beside it.

A command's module is imported only when that command runs (see
:mod:`mschat.cli.root`), so ``mschat ask`` loads neither the other groups nor
the front ends (TUI, Discord bot, HTTP API).
"""

from mschat.cli.base import Context
from mschat.cli.root import cli, main

__all__ = ["Context", "cli", "main"]
