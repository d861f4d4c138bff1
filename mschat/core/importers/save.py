"""An imported conversation stored as a private session, in one transaction."""

from __future__ import annotations

from mschat.core.attachments import save_files
from mschat.core.importers.base import ImportedSession, in_order
from mschat.core.models import Session, User
from mschat.store.contract import Store


def save_imported(store: Store, user: User, item: ImportedSession, origin: str) -> Session | None:
    """Store ``item`` as a private session of ``user``; None if the user already has it.

    The conversation's reference goes on its first message, so importing the
    same file again skips it, and removing the session lets it be imported anew.
    """
    rows = in_order(
        [
            {"status": "complete", **row, "author_id": user.id if row["role"] == "user" else None}
            for row in item.messages
        ],
        item.created,
    )
    with store.write():
        if item.ref and store.has_message_ref(item.ref, user.id):
            return None
        created = item.created or (rows[0]["created"] if rows else None)
        updated = item.updated or (rows[-1]["created"] if rows else None) or created
        # a session without known times is created now, like any other
        times = {key: value for key, value in (("created", created), ("updated", updated)) if value}
        session = store.create_session(
            creator_id=user.id,
            title=item.title,
            model=item.model,
            system_msg=item.system_msg,
            public=0,
            origin=origin,
            **times,
        )
        save_files(store, rows)
        store.insert_messages(session.id, rows, ref=item.ref)
    return store.get_session(session.id)
