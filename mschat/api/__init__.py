"""The HTTP API (``mschat serve-api``): ChatGPT-MS ``/chat``, sessions REST and OpenAI ``/v1``.

Build the aiohttp application with :func:`mschat.api.server.make_api`; serve it
with :func:`mschat.api.server.run`. Nothing here runs at import time.
"""
