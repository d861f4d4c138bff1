"""The bot's invite URL, asking for exactly the permissions the bot uses."""

from __future__ import annotations

import discord

#: every permission the bot needs in a server channel, and what it needs it for
PERMISSIONS = discord.Permissions(
    view_channel=True,  # see the Q&A channels and the messages it answers
    send_messages=True,  # answers, the "disabled" hint and error notes
    send_messages_in_threads=True,  # threads of a Q&A channel are answered too
    read_message_history=True,  # an answer is a reply to the question (a message reference)
    add_reactions=True,  # ✍🏻 / ⏳ / 👌 / ❌ on the question
    attach_files=True,  # a long session's transcript (session-<id>.md) in its panel
)
# Not asked for: Embed Links (the bot sends no embeds; without it, links in model
# answers show no preview), Manage Messages (editing, deleting and un-reacting its
# own messages needs none), Mention Everyone (nothing the bot sends may ping).

#: a bot user, and its slash and message commands
SCOPES = ("bot", "applications.commands")


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot to a server with ``PERMISSIONS``."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)
