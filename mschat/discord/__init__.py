"""The Discord front end: ``mschat serve-discord`` (discord.py over the core's SessionManager).

Import ``mschat.discord.bot`` for ``make_bot`` / ``run``; nothing here has side effects.
"""
