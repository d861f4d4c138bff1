"""The admin in a browser (``mschat serve-admin``): the TUI served over textual-serve.

Each browser connection gets its own ``mschat tui`` process, run as the local
admin on the same database and MSCHAT_HOME. :mod:`.server` builds and runs the
aiohttp application; :mod:`.auth` holds the login cookie. Nothing runs at
import time, and ``mschat ask`` never imports this package.
"""
