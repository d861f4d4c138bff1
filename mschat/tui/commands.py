"""Every TUI action once: its key, palette title and help (bindings and palette use it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True, slots=True)
class Action:
    """One user action."""

    name: str  # the app's action_<name>
    key: str
    title: str
    help: str
    footer: bool = True
    short: str = ""  # footer label, when shorter than the title
    priority: bool = False  # before the focused widget's own binding of the key


ACTIONS: tuple[Action, ...] = (
    Action("new_session", "ctrl+n", "New session", "Start an empty session", short="New"),
    Action("rename", "f2", "Rename session", "Give the open session a new title", False),
    Action("delete", "f8", "Delete session", "Delete the open session (asks first)", False),
    Action(
        "toggle_public", "f3", "Toggle public", "Make the open session public or private", False
    ),
    Action("change_model", "f4", "Change model", "Pick the model of the open session", False),
    Action(
        "edit_system",
        "ctrl+g",
        "Edit system message",
        "Edit the open session's system message",
        False,
    ),
    Action(
        "stop",
        "escape",
        "Stop streaming",
        "Stop the reply being streamed (kept as interrupted)",
        short="Stop",
    ),
    Action(
        "edit_prompt",
        "ctrl+e",
        "Edit in $EDITOR",
        "Write the prompt in your $VISUAL or $EDITOR; it comes back into the prompt, unsent",
        short="Editor",
        # the prompt's own ctrl+e moves to the end of the line (End still does)
        priority=True,
    ),
    Action("regenerate", "ctrl+r", "Regenerate", "Answer the last question again"),
    Action(
        "edit_message",
        "ctrl+o",
        "Edit & resend",
        "Edit the selected (or last) question and resend it in a fork",
        short="Edit & resend",
    ),
    Action("copy", "f5", "Copy", "Copy the selected (or last) message or one of its code blocks"),
    Action(
        "export_markdown",
        "ctrl+s",
        "Export Markdown",
        "Write the open session to a Markdown file",
        False,
    ),
    Action("export_json", "", "Export JSON", "Write the open session to a JSON file", False),
    Action("search", "ctrl+f", "Search", "Full-text search across sessions, jump to a hit"),
    Action(
        "settings",
        "f9",
        "User settings",
        "Edit the settings of the user whose view this is",
        short="Settings",
    ),
    Action(
        "switch_user",
        "f10",
        "Switch user",
        "View the TUI as another user (admin view)",
        short="Switch user",
    ),
    Action(
        "toggle_everyone",
        "f12",
        "All users' sessions",
        "Admin: list every user's sessions (hidden ones too) in the sidebar",
        False,
    ),
    Action(
        "feedback",
        "",
        "Feedback",
        "Admin: answers given feedback, with counts and texts (Enter opens one)",
        False,
    ),
    Action(
        "admin",
        "f7",
        "Admin",
        "Admin: users, queue, feedback, interactions and API calls, with filters",
        False,
        # before the prompt's own F7 (select all), so the key works from the prompt
        priority=True,
    ),
    Action(
        "toggle_hidden",
        "",
        "Hide/unhide session",
        "Hide the open session from listings (or show it again)",
        False,
    ),
    Action(
        "attach",
        "f6",
        "Attach file",
        "Attach an image or a text file to the next question (its path completes with Tab)",
        short="Attach",
        priority=True,  # the prompt's own F6 selects a line
    ),
    Action(
        "open_file",
        "",
        "Open file",
        "Open a file of the selected (or last) message with files (o on a selected message): "
        "saved to your downloads",
        False,
    ),
    Action(
        "remove_files",
        "",
        "Remove files",
        "Send the next question without the files attached so far",
        False,
    ),
    Action("load_older", "", "Load older messages", "Show the previous page of the session", False),
    Action("focus_prompt", "ctrl+l", "Focus prompt", "Move the cursor to the prompt", False),
    Action(
        "focus_sidebar", "ctrl+b", "Focus sidebar", "Move the cursor to the session list", False
    ),
    Action(
        "focus_chat",
        "ctrl+t",
        "Focus messages",
        "Move to the messages (up/down selects one for copy and edit)",
        False,
    ),
)


def bindings() -> list[BindingType]:
    """Key bindings of the main screen (routed to the app's actions)."""
    return [
        Binding(a.key, f"app.{a.name}", a.short or a.title, show=a.footer, priority=a.priority)
        for a in ACTIONS
        if a.key
    ]


class MschatCommands(Provider):
    """Command-palette entries for every action."""

    async def discover(self) -> Hits:
        """All actions, in their usual order."""
        app = self.app
        for action in ACTIONS:
            yield DiscoveryHit(
                action.title, partial(app.run_action, action.name), help=self._help(action)
            )

    async def search(self, query: str) -> Hits:
        """Actions whose title matches the query."""
        matcher = self.matcher(query)
        app = self.app
        for action in ACTIONS:
            score = matcher.match(action.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(action.title),
                    partial(app.run_action, action.name),
                    help=self._help(action),
                )

    @staticmethod
    def _help(action: Action) -> str:
        return f"{action.help} ({action.key})" if action.key else action.help
