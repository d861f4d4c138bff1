"""The chat view: cheap finished messages, one live streaming reply, paging back."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from markdown_it import MarkdownIt
from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Region, Size
from textual.message import Message as TextualMessage
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Collapsible, Static

from mschat.core.attachments import size_text
from mschat.core.events import ToolCallFinished
from mschat.core.models import AttachmentInfo, Message, MessageStatus
from mschat.tui.format import author_of, one_line, plain, short_time, status_note
from mschat.visible import visible

if TYPE_CHECKING:
    from mschat.store.contract import ToolCallRecord

#: messages per page when opening a session and paging back
MESSAGE_PAGE = 50
CODE_THEME = "monokai"
#: the live reply is re-rendered at most this often while streaming (8 updates a second)
FLUSH_SECONDS = 0.125


def markdown(text: str) -> RichMarkdown:
    """Markdown with highlighted code; a link shows its target after its text.

    Not a terminal hyperlink (OSC 8): a reply could otherwise show one address
    and open another.
    """
    return RichMarkdown(text, code_theme=CODE_THEME, hyperlinks=False)


def message_header(message: Message) -> Text:
    """The author, time and (when not complete) status of a message."""
    style = "bold cyan" if message.role == "user" else "bold green"
    header = Text(author_of(message), style=style)
    header.append(f"  {short_time(message.created)}", style="dim")
    note = status_note(message)
    if note:
        bad = message.status in (
            MessageStatus.FAILED,
            MessageStatus.INTERRUPTED,
            MessageStatus.FLAGGED,
        )
        header.append(note, style="bold red" if bad else "yellow")
    return header


def header_lines(message: Message, width: int, console: Console) -> list[Strip]:
    """The header of a message drawn at ``width``."""
    options = console.options.update(width=max(width, 1), height=None)
    lines = console.render_lines(message_header(message), options, pad=False)
    return [Strip(line) for line in lines]


def message_body(message: Message) -> RenderableType:
    """Header, Markdown body (with highlighted code) and any error, as one renderable."""
    parts: list[RenderableType] = [message_header(message)]
    if message.content:
        parts.append(markdown(visible(message.content)))
    elif message.status == MessageStatus.STREAMING:
        parts.append(Text("…", style="dim"))
    if message.attachments:
        parts.append(file_chips(message.attachments))
    if message.error:
        parts.append(plain(f"error: {message.error}", "bold red"))
    return Group(*parts)


#: how much of a tool call's arguments or result a block shows
TOOL_TEXT = 2000


def _cut(text: str) -> str:
    return text if len(text) <= TOOL_TEXT else text[:TOOL_TEXT] + "…"


def tool_block(
    server: str, tool: str, status: str, duration_ms: int, arguments: str, result: str
) -> Collapsible:
    """A collapsed block for one tool call: its line, and (opened) its arguments and
    result, shown as plain visible text (both are hostile)."""
    title = f"🔧 {one_line(server)}/{one_line(tool)} · {status}"
    if status != "denied":
        title += f" · {duration_ms} ms"
    body = Text()
    body.append("arguments: ", style="bold")
    body.append(visible(_cut(arguments)))
    body.append("\nresult: ", style="bold")
    body.append(visible(_cut(result)))
    return Collapsible(Static(body), title=title, collapsed=True, classes="tool-call")


def stored_block(call: ToolCallRecord) -> Collapsible:
    """The block of a stored tool call (an earlier answer's)."""
    try:
        spent = datetime.fromisoformat(call.finished) - datetime.fromisoformat(call.started)
        duration = max(0, int(spent.total_seconds() * 1000))
    except ValueError:
        duration = 0
    return tool_block(call.server, call.tool, call.status, duration, call.arguments, call.result)


def with_tool_calls(
    views: Sequence[MessageView], calls: Mapping[int, Sequence[ToolCallRecord]]
) -> list[Widget]:
    """Message views with each reply's tool calls as blocks just above it."""
    widgets: list[Widget] = []
    for view in views:
        widgets += [stored_block(call) for call in calls.get(view.message.id, ())]
        widgets.append(view)
    return widgets


def file_chips(files: Sequence[AttachmentInfo]) -> Text:
    """The files of a message as chips: icon, name, type and size (o opens them)."""
    chips = Text()
    for index, info in enumerate(files):
        if index:
            chips.append("  ")
        icon = "🖼" if info.is_image else "📎"
        chips.append(f" {icon} {one_line(info.name)} ", style="reverse")
        chips.append(f" {info.mime} · {size_text(info.size)}", style="dim")
    return chips


def _placed(
    widget: Widget, size: Size, virtual_size: Size, container_size: Size, layout: bool
) -> bool:
    """Record the size a layout pass gave, without asking for another layout pass.

    Textual's default re-runs the layout of the whole screen whenever a widget's
    virtual size changed, i.e. after every update of a growing reply; the pass
    that reports the size has already placed everything (scrollbars that appear
    or vanish still ask for their own layout).
    """
    return Widget._size_updated(widget, size, virtual_size, container_size, layout=False)


class CachedRender(Widget):
    """A rich renderable drawn once per width into cached strips.

    Layout asks for the height and the compositor for lines many times; rendering
    Markdown again each time is what makes long sessions slow.
    """

    DEFAULT_CSS = """
    CachedRender { height: auto; }
    """

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self._width = -1
        self._strips: list[Strip] = []

    def renderable(self) -> RenderableType:
        """What to draw (subclasses)."""
        raise NotImplementedError

    def invalidate(self) -> None:
        """Draw again (the content changed)."""
        self._width = -1
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Strip]:
        if width != self._width:
            console = self.app.console
            options = console.options.update(width=max(width, 1), height=None, highlight=False)
            lines = console.render_lines(self.renderable(), options, pad=False)
            self._strips = [Strip(line) for line in lines]
            self._width = width
        return self._strips

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        return _placed(self, size, virtual_size, container_size, layout)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """The rendered height at this width (rendering once per width)."""
        return len(self._lines(width))

    def render_line(self, y: int) -> Strip:
        """One cached line, in the widget's current style (selection changes it)."""
        width = self.content_size.width
        style = self.rich_style
        lines = self._lines(width)
        if y >= len(lines):
            return Strip.blank(width, style)
        return lines[y].apply_style(style).extend_cell_length(width, style)


class MessageView(CachedRender):
    """One finished (or remotely streaming) message."""

    def __init__(self, message: Message) -> None:
        super().__init__(classes=f"message -{message.role}")
        self.message = message
        self.set_class(message.status == MessageStatus.FAILED, "-failed")

    def renderable(self) -> RenderableType:
        """Header, body and error."""
        return message_body(self.message)

    def adopt(self, width: int, body: list[Strip]) -> None:
        """Take the body lines a live reply already drew (the finished text is the same)."""
        self._strips = header_lines(self.message, width, self.app.console) + body
        self._width = width

    def show(self, message: Message) -> None:
        """Re-render after the stored message changed."""
        self.message = message
        self.set_class(message.status == MessageStatus.FAILED, "-failed")
        self.invalidate()

    def on_click(self) -> None:
        """Select the message (copy / edit act on the selection)."""
        chat = self.query_ancestor(ChatView)
        chat.select(self)


def markdown_lines(text: str, width: int, console: Console) -> list[Strip]:
    """Markdown rendered at ``width``, without blank lines around it."""
    options = console.options.update(width=max(width, 1), height=None, highlight=False)
    lines = console.render_lines(markdown(text), options, pad=False)
    strips = [Strip(line) for line in lines]
    while strips and not strips[0].cell_length:
        strips.pop(0)
    while strips and not strips[-1].cell_length:
        strips.pop()
    return strips


def freeze_point(text: str, parser: MarkdownIt | None = None) -> int:
    """Where the last top-level Markdown block of ``text`` starts (0: only one block).

    Everything before it is finished: later text can only extend or change the
    last block (an open paragraph, list or code fence), never an earlier one.
    """
    starts = [
        token.map[0]
        for token in (parser or MarkdownIt("gfm-like")).parse(text)
        if token.map is not None and token.level == 0
    ]
    if len(starts) < 2 or starts[-1] <= 0:
        return 0
    return sum(len(line) for line in text.splitlines(keepends=True)[: starts[-1]])


class LiveReply(CachedRender):
    """The reply this process streams, as one widget drawing cached lines.

    Chunks are coalesced for FLUSH_SECONDS, so the repaint rate, not the chunk
    rate, decides the CPU a reply costs. Finished Markdown blocks are rendered
    once; only the open last block is rendered again on each flush. (Textual's
    ``Markdown`` widget fed by a ``MarkdownStream``, used before, mounts a widget
    per block: laying out and repainting that tree cost 2-3x the CPU of this
    widget per update, far over the benchmark's budget.) Drawing with the same
    renderer as ``MessageView`` also means the reply keeps its look when it
    finishes, and the finished view takes over the lines already drawn.
    """

    def __init__(self, message: Message) -> None:
        super().__init__(classes="message -assistant -live")
        self.message = message
        self.parts: list[str] = []
        self.pending: list[str] = []
        self.timer: Timer | None = None
        #: finished blocks, then the text of the open last block
        self.blocks: list[str] = []
        self.tail = ""
        self._done: list[Strip] = []  # header and finished blocks at self._width
        self._drawn_tail: str | None = None
        self._head = 0  # header lines at the start of self._done
        self._shown = 0.0  # when _flush last showed new text (time.monotonic)
        self._parser = MarkdownIt("gfm-like")

    async def write(self, text: str) -> None:
        """Append a piece of the reply (shown at most every FLUSH_SECONDS)."""
        self.parts.append(text)
        self.pending.append(text)
        if self.timer is None:
            # providers send many small chunks a second; re-rendering for each
            # one costs far more CPU than a short coalescing delay. Paced from the
            # last update (not this chunk): a steady 1 / FLUSH_SECONDS updates a
            # second, and the first chunk after a pause shows at once
            delay = self._shown + FLUSH_SECONDS - time.monotonic()
            self.timer = self.set_timer(max(delay, 0.001), self._flush)

    def _flush(self, *, final: bool = False) -> None:
        self.timer = None
        if not self.pending:
            return
        self._shown = time.monotonic()
        text = "".join(self.pending)
        self.pending.clear()
        if text.endswith("\r") and not final:
            # the next chunk may start with the newline of a CRLF
            self.pending.append("\r")
            text = text[:-1]
        # shown as the finished message will be: control characters made visible
        self.tail += visible(text)
        # lines above the old tail stay as they are: repaint from there down only
        start = len(self._done)
        # a block can only end where a line does
        split = freeze_point(self.tail, self._parser) if "\n" in text else 0
        if split:
            block, self.tail = self.tail[:split], self.tail[split:]
            self.blocks.append(block)
            self._drawn_tail = None
            if self._width >= 0:
                self._done.extend(self._block_lines(block, self._width, len(self.blocks) == 1))
        if self._width >= 0:
            height = max(len(self._lines(self._width)) - start, 1)
            self.refresh(Region(0, start, self._width, height), layout=True)
        else:
            self.refresh(layout=True)

    async def close(self) -> None:
        """Show what is still pending and stop the timer."""
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        self._flush(final=True)

    def _block_lines(self, block: str, width: int, first: bool) -> list[Strip]:
        lines = markdown_lines(block, width, self.app.console)
        # one blank line between blocks, as in the finished message
        return [Strip.blank(0), *lines] if lines and not first else lines

    def renderable(self) -> RenderableType:
        """Everything so far (what the finished message will show)."""
        return message_body(dataclasses.replace(self.message, content=self.text))

    def _lines(self, width: int) -> list[Strip]:
        if width != self._width:
            console = self.app.console
            self._done = header_lines(self.message, width, console)
            self._head = len(self._done)
            self._width = width
            for index, block in enumerate(self.blocks):
                self._done.extend(self._block_lines(block, width, index == 0))
            self._drawn_tail = None
        if self._drawn_tail != self.tail:
            if self.tail.strip():
                tail = self._block_lines(self.tail, width, not self.blocks)
            elif self.blocks:
                tail = []
            else:
                tail = [Strip([Segment("…", Style(dim=True))])]
            self._strips = self._done + tail
            self._drawn_tail = self.tail
        return self._strips

    def drawn_body(self) -> tuple[int, list[Strip]] | None:
        """The width and lines drawn for the whole text (no header), if up to date."""
        if self._width < 0 or self.pending or self._drawn_tail != self.tail:
            return None
        return self._width, self._strips[self._head :]

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        if self._size.width == size.width:
            # only taller: the lines drawn so far are still right, and _flush marked
            # the changed ones (Textual would repaint every visible line)
            self._size = size
        return _placed(self, size, virtual_size, container_size, layout)

    @property
    def text(self) -> str:
        """What has arrived so far."""
        return "".join(self.parts)


class ChatView(VerticalScroll, can_focus=True):
    """Messages of the open session; asks for older pages when scrolled to the top."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "select_previous", "Previous message", show=False),
        Binding("down", "select_next", "Next message", show=False),
        Binding("o", "app.open_file", "Open file", show=False),
    ]

    @dataclass
    class OlderWanted(TextualMessage):
        """Scrolled to the top while older messages exist."""

        chat: ChatView
        before_id: int

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.views: dict[int, MessageView] = {}
        self.has_older = False
        self.loading_older = False
        self.selected: MessageView | None = None
        self.session_id: int | None = None

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        return _placed(self, size, virtual_size, container_size, layout)

    # ---- content -----------------------------------------------------------

    async def show_session(
        self,
        session_id: int | None,
        messages: list[Message],
        *,
        has_older: bool,
        calls: Mapping[int, Sequence[ToolCallRecord]] | None = None,
    ) -> None:
        """Replace the view with a session's last page (and its answers' tool calls)."""
        self.session_id = session_id
        self.selected = None
        self.views = {}
        await self.remove_children()
        views = [MessageView(m) for m in messages]
        self.views = {v.message.id: v for v in views}
        self.has_older = has_older
        self.loading_older = False
        if views:
            await self.mount_all(with_tool_calls(views, calls or {}))
        self.anchor()
        self.scroll_end(animate=False, immediate=True)

    async def add_message(self, message: Message) -> MessageView:
        """Append (or update in place) a stored message."""
        known = self.views.get(message.id)
        if known is not None:
            known.show(message)
            return known
        view = MessageView(message)
        self.views[message.id] = view
        live = self.query(LiveReply)
        if live:
            await self.mount(view, before=live.first())
        else:
            await self.mount(view)
        return view

    async def add_older(self, messages: list[Message], *, has_older: bool) -> None:
        """Prepend an older page, keeping the current first message in view."""
        self.has_older = has_older
        fresh = [m for m in messages if m.id not in self.views]
        if not fresh:
            self.loading_older = False
            return
        first = self.children[0] if self.children else None
        views = [MessageView(m) for m in fresh]
        for view in views:
            self.views[view.message.id] = view
        if first is not None:
            await self.mount_all(views, before=first)
            self.call_after_refresh(self._keep_in_view, first)
        else:
            await self.mount_all(views)
            self.loading_older = False

    def _keep_in_view(self, widget: Widget, tries: int = 10) -> None:
        if widget.virtual_region.y == 0 and tries > 0:
            # not laid out yet: the prepended messages have no height so far
            self.call_after_refresh(self._keep_in_view, widget, tries - 1)
            return
        self.scroll_to(y=widget.virtual_region.y, animate=False, immediate=True)
        self.loading_older = False

    async def add_tool_call(self, event: ToolCallFinished, arguments: str) -> Collapsible:
        """A block for one tool call of the answer being written, above it."""
        block = tool_block(
            event.server,
            event.tool,
            event.status,
            event.duration_ms,
            arguments,
            event.notice or event.result,
        )
        live = self.query(LiveReply)
        await self.mount(block, before=live.first() if live else None)
        return block

    async def start_live(self, message: Message) -> LiveReply:
        """Mount the live reply widget for a reply this process streams."""
        live = LiveReply(message)
        await self.mount(live)
        self.anchor()
        return live

    async def finish_live(self, live: LiveReply, message: Message) -> MessageView:
        """Swap the live reply for a cheap finished view of the stored message."""
        await live.close()
        view = MessageView(message)
        drawn = live.drawn_body()
        if drawn is not None and not message.error and message.content == live.text:
            # the same lines the reply streamed into: no second Markdown render
            view.adopt(*drawn)
        self.views[message.id] = view
        if live.parent is self:
            await self.mount(view, before=live)
            await live.remove()
        else:
            await self.mount(view)
        return view

    async def remove_from(self, message_id: int) -> None:
        """Drop messages from ``message_id`` on (regenerate replaces the last reply)."""
        doomed = [v for mid, v in self.views.items() if mid >= message_id]
        for view in doomed:
            self.views.pop(view.message.id, None)
            if self.selected is view:
                self.selected = None
        if doomed:
            await self.remove_children(doomed)

    def oldest_id(self) -> int | None:
        """The id of the oldest message shown."""
        return min(self.views) if self.views else None

    def messages(self) -> list[Message]:
        """Shown messages in order."""
        return [self.views[mid].message for mid in sorted(self.views)]

    # ---- selection ---------------------------------------------------------

    def select(self, view: MessageView | None) -> None:
        """Mark one message as the target of copy and edit."""
        if self.selected is not None:
            self.selected.remove_class("-selected")
        self.selected = view
        if view is not None:
            view.add_class("-selected")
            self.scroll_to_widget(view, animate=False)

    def _step(self, delta: int) -> None:
        ordered = [self.views[mid] for mid in sorted(self.views)]
        if not ordered:
            return
        if self.selected in ordered:
            index = ordered.index(self.selected) + delta  # type: ignore[arg-type]
        else:
            index = len(ordered) - 1
        self.select(ordered[max(0, min(index, len(ordered) - 1))])

    def action_select_previous(self) -> None:
        """Select the message above."""
        self._step(-1)

    def action_select_next(self) -> None:
        """Select the message below."""
        self._step(1)

    def jump_to(self, message_id: int) -> bool:
        """Select and scroll to a shown message; False when it is not loaded."""
        view = self.views.get(message_id)
        if view is None:
            return False
        self.release_anchor()
        self.select(view)
        self.call_after_refresh(self.scroll_to_widget, view, top=True, animate=False)
        return True

    # ---- paging back ---------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Ask for older messages when the top is reached."""
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 and old_value > 0:
            self.want_older()

    def want_older(self) -> None:
        """Request the page before the oldest shown message, once at a time."""
        oldest = self.oldest_id()
        if self.has_older and not self.loading_older and oldest is not None:
            self.loading_older = True
            self.post_message(self.OlderWanted(self, oldest))
