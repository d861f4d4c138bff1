"""Persistent components: namespaced custom_ids, one DynamicItem, view builders.

Every button and select carries its whole state in its custom_id
(``mschat:user:<id>:attach``, ``mschat:session:<id>:public`` …), and one
``DynamicItem`` template registered at startup routes them all, so a message
sent before a restart keeps working after it. Views are fully dynamic:
nothing is kept in memory per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import discord

from mschat.core.models import Session, Status, User
from mschat.discord.texts import clip, on_off

PREFIX = "mschat"
MAX_CUSTOM_ID = 100
BUTTONS_PER_ROW = 5
ROWS = 5
OPTIONS_PER_SELECT = 25
PAGE_SIZE = OPTIONS_PER_SELECT
STATUS_OPTIONS = (
    (Status.NEW, "new: every message starts a new session"),
    (Status.ACTIVE, "active: continue the current session"),
    (Status.DISABLED, "disabled: the bot ignores my messages"),
)


@dataclass(frozen=True, slots=True)
class CustomId:
    """A parsed custom_id: ``mschat:<scope>:<id>:<action>[:<arg>]``."""

    scope: str  # user | session | message
    target: int
    action: str
    arg: str | None = None

    def __str__(self) -> str:
        text = f"{PREFIX}:{self.scope}:{self.target}:{self.action}"
        if self.arg is not None:
            text += f":{self.arg}"
        if len(text) > MAX_CUSTOM_ID:
            raise ValueError(f"custom_id too long: {text!r}")
        return text

    @classmethod
    def parse(cls, text: str) -> CustomId | None:
        """The parsed id, or None for anything not ours."""
        match = CUSTOM_ID.fullmatch(text)
        if match is None:
            return None
        return cls(match["scope"], int(match["target"]), match["action"], match["arg"])


CUSTOM_ID = re.compile(
    r"mschat:(?P<scope>user|session|message):(?P<target>\d{1,20}):(?P<action>[a-z_]{1,20})"
    r"(?::(?P<arg>[\w-]{1,30}))?"
)


class MschatItem(
    discord.ui.DynamicItem[discord.ui.Item[Any]],
    template=CUSTOM_ID.pattern,
):
    """Any mschat button or select; its callback goes to the bot's component router."""

    def __init__(self, item: discord.ui.Item[Any], *, row: int | None = None) -> None:
        super().__init__(item, row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> MschatItem:
        """Rebuild the item from a message's component (works across restarts)."""
        return cls(item)

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click or selection to the bot."""
        data: dict[str, Any] = dict(interaction.data or {})  # type: ignore[arg-type]
        values = [str(v) for v in data.get("values", [])]
        parsed = CustomId.parse(self.custom_id)
        if parsed is not None:
            await interaction.client.on_component(interaction, parsed, values)  # type: ignore[attr-defined]


def button(
    cid: CustomId,
    label: str,
    *,
    style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    row: int,
    disabled: bool = False,
) -> MschatItem:
    """A persistent button."""
    return MschatItem(
        discord.ui.Button(
            label=clip(label, 80), custom_id=str(cid), style=style, disabled=disabled
        ),
        row=row,
    )


def select(
    cid: CustomId, placeholder: str, options: list[discord.SelectOption], *, row: int
) -> MschatItem:
    """A persistent single-choice select (at most 25 options)."""
    return MschatItem(
        discord.ui.Select(
            custom_id=str(cid),
            placeholder=clip(placeholder, 150),
            options=options[:OPTIONS_PER_SELECT],
            min_values=1,
            max_values=1,
        ),
        row=row,
    )


def model_options(models: list[str], current: str | None) -> list[discord.SelectOption]:
    """Options for a model select, the current one first if the list is long."""
    names = list(dict.fromkeys(([current] if current else []) + models))
    names = sorted(names[:OPTIONS_PER_SELECT])
    return [
        discord.SelectOption(label=clip(name, 100), value=name[:100], default=name == current)
        for name in names
        if len(name) <= 100
    ]


def toggle_style(flag: bool) -> discord.ButtonStyle:
    """Green when on."""
    return discord.ButtonStyle.success if flag else discord.ButtonStyle.secondary


def user_view(
    user: User,
    sessions: list[Session],
    *,
    page: int,
    pages: int,
    models: list[str],
    model: str | None,
) -> discord.ui.View:
    """The /user panel's components: toggles, clear, paging, model/status/session selects."""
    view = discord.ui.View(timeout=None)
    uid = user.id
    view.add_item(
        button(
            CustomId("user", uid, "show_public"),
            f"Show public: {on_off(user.show_public)}",
            style=toggle_style(user.show_public),
            row=0,
        )
    )
    view.add_item(
        button(
            CustomId("user", uid, "attach"),
            f"Attach: {on_off(user.attach)}",
            style=toggle_style(user.attach),
            row=0,
        )
    )
    view.add_item(
        button(
            CustomId("user", uid, "clear"),
            "Clear sessions",
            style=discord.ButtonStyle.danger,
            row=0,
        )
    )
    if pages > 1:
        view.add_item(
            button(
                CustomId("user", uid, "page", f"{max(page - 1, 0)}-prev"),
                "◀ Previous",
                row=0,
                disabled=page <= 0,
            )
        )
        view.add_item(
            button(
                CustomId("user", uid, "page", f"{min(page + 1, pages - 1)}-next"),
                "Next ▶",
                row=0,
                disabled=page >= pages - 1,
            )
        )
    options = model_options(models, model)
    if options:
        view.add_item(
            select(CustomId("user", uid, "model"), "Model of new sessions", options, row=1)
        )
    view.add_item(
        select(
            CustomId("user", uid, "status"),
            "Status",
            [
                discord.SelectOption(label=label, value=status.value, default=user.status == status)
                for status, label in STATUS_OPTIONS
            ],
            row=2,
        )
    )
    if sessions:
        session_options = [
            discord.SelectOption(
                label=clip(f"#{s.id} {s.title}", 100),
                value=str(s.id),
                description=clip(
                    f"{'public' if s.public else 'private'} · {s.message_count} messages"
                    + (f" · by {s.creator_name}" if s.creator_id != uid else ""),
                    100,
                ),
                default=s.id == user.current_session_id,
            )
            for s in sessions[:OPTIONS_PER_SELECT]
        ]
        label = "Use a session" + (f" (page {page + 1}/{pages})" if pages > 1 else "")
        view.add_item(
            select(CustomId("user", uid, "session", str(page)), label, session_options, row=3)
        )
    check_limits(view)
    return view


def session_view(session: Session, *, models: list[str]) -> discord.ui.View:
    """The /session panel's components (creator only): public toggle, remove, model."""
    view = discord.ui.View(timeout=None)
    sid = session.id
    view.add_item(
        button(
            CustomId("session", sid, "public"),
            f"Public: {on_off(session.public)}",
            style=toggle_style(session.public),
            row=0,
        )
    )
    view.add_item(
        button(
            CustomId("session", sid, "remove"),
            "Remove session",
            style=discord.ButtonStyle.danger,
            row=0,
        )
    )
    options = model_options(models, session.model)
    if options:
        view.add_item(
            select(CustomId("session", sid, "model"), "Model of the next turns", options, row=1)
        )
    check_limits(view)
    return view


def confirm_view(scope: str, target: int, action: str, label: str) -> discord.ui.View:
    """Confirm / cancel buttons for a destructive action."""
    view = discord.ui.View(timeout=None)
    view.add_item(
        button(
            CustomId(scope, target, action, "yes"), label, style=discord.ButtonStyle.danger, row=0
        )
    )
    view.add_item(button(CustomId(scope, target, action, "no"), "Cancel", row=0))
    check_limits(view)
    return view


FEEDBACK = (
    ("good", "👍 Good", discord.ButtonStyle.success),
    ("outdated", "Outdated", discord.ButtonStyle.secondary),
    ("inaccurate", "Inaccurate", discord.ButtonStyle.secondary),
    ("other", "Other…", discord.ButtonStyle.secondary),
)


def feedback_view(reply_id: int, counts: dict[str, int] | None = None) -> discord.ui.View:
    """Feedback buttons under an answer (good / outdated / inaccurate / other…) with the
    number of votes each has, when it has any."""
    view = discord.ui.View(timeout=None)
    for kind, text, style in FEEDBACK:
        count = (counts or {}).get(kind, 0)
        label = f"{text} · {count}" if count else text
        view.add_item(button(CustomId("message", reply_id, "fb", kind), label, style=style, row=0))
    check_limits(view)
    return view


def check_limits(view: discord.ui.View) -> None:
    """Raise if a view breaks Discord's limits (5 rows, 5 buttons or one select per row)."""
    rows = view.to_components()
    for row in rows:
        items = row["components"]
        selects = [c for c in items if c["type"] != discord.ComponentType.button.value]
        if len(items) > BUTTONS_PER_ROW or (selects and len(items) > 1):
            raise ValueError(f"component row overflows: {items}")
        for component in items:
            if len(component.get("custom_id", "")) > MAX_CUSTOM_ID:
                raise ValueError(f"custom_id too long: {component['custom_id']}")
            if len(component.get("options", [])) > OPTIONS_PER_SELECT:
                raise ValueError("more than 25 options in a select")
    if len(rows) > ROWS:
        raise ValueError(f"{len(rows)} component rows (at most {ROWS})")
