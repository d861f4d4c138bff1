"""The chat view: cheap finished messages, one live streaming reply, paging back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from markdown_it import MarkdownIt
from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Size
from textual.message import Message as TextualMessage
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from mschat.core.models import Message, MessageStatus
from mschat.tui.format import author_of, short_time, status_note

#: messages per page when opening a session and paging back
MESSAGE_PAGE = 50
CODE_THEME = "monokai"
#: the live reply is re-rendered at most this often while streaming (8 updates a second)
FLUSH_SECONDS = 0.125


def message_header(message: Message) -> Text:
    """The author, time and (when not complete) status of a message."""
    style = "bold cyan" if message.role == "user" else "bold green"
    header = Text(author_of(message), style=style)
    header.append(f"  {short_time(message.created)}", style="dim")
    note = status_note(message)
    if note:
        bad = message.status in (MessageStatus.FAILED, MessageStatus.INTERRUPTED)
        header.append(note, style="bold red" if bad else "yellow")
    return header


def message_body(message: Message) -> RenderableType:
    """Header, Markdown body (with highlighted code) and any error, as one renderable."""
    parts: list[RenderableType] = [message_header(message)]
    if message.content:
        parts.append(RichMarkdown(message.content, code_theme=CODE_THEME))
    elif message.status == MessageStatus.STREAMING:
        parts.append(Text("…", style="dim"))
    if message.error:
        parts.append(Text(f"error: {message.error}", style="bold red"))
    return Group(*parts)


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

    def show(self, message: Message) -> None:
        """Re-render after the stored message changed."""
        self.message = message
        self.set_class(message.status == MessageStatus.FAILED, "-failed")
        self.invalidate()

    def on_click(self) -> None:
        """Select the message (copy / edit act on the selection)."""
        chat = self.query_ancestor(ChatView)
        chat.select(self)


def _frozen_lines(text: str, width: int, console: Console) -> list[Strip]:
    """Render finished Markdown blocks, without the blank lines around them."""
    options = console.options.update(width=max(width, 1), height=None, highlight=False)
    lines = console.render_lines(RichMarkdown(text, code_theme=CODE_THEME), options, pad=False)
    strips = [Strip(line) for line in lines]
    while strips and not strips[0].cell_length:
        strips.pop(0)
    while strips and not strips[-1].cell_length:
        strips.pop()
    return strips


def freeze_point(text: str) -> int:
    """Where the last top-level Markdown block of ``text`` starts (0: only one block).

    Everything before it is finished: later text can only extend or change the
    last block (an open paragraph, list or code fence), never an earlier one.
    """
    starts = [
        token.map[0]
        for token in MarkdownIt("gfm-like").parse(text)
        if token.map is not None and token.level == 0
    ]
    if len(starts) < 2 or starts[-1] <= 0:
        return 0
    return sum(len(line) for line in text.splitlines(keepends=True)[: starts[-1]])


class FrozenBlocks(CachedRender):
    """The finished blocks of the live reply, each rendered once per width.

    Only the unfinished tail stays in the ``Markdown`` widget: its block widgets
    are what each layout and repaint of a streaming reply costs, so keeping
    them few keeps a long reply as cheap to stream as a short one.
    """

    def __init__(self) -> None:
        super().__init__(classes="live-frozen")
        self.chunks: list[str] = []

    def add(self, text: str) -> None:
        """Append finished blocks (rendering only them)."""
        self.chunks.append(text)
        if self._width >= 0:
            self._strips.extend(self._render_chunk(text, self._width))
        self.refresh(layout=True)

    def _render_chunk(self, text: str, width: int) -> list[Strip]:
        strips = _frozen_lines(text, width, self.app.console)
        if self._strips and strips:
            return [Strip.blank(0), *strips]
        return strips

    def renderable(self) -> RenderableType:
        """All finished blocks (used only to describe the widget)."""
        return RichMarkdown("\n\n".join(self.chunks), code_theme=CODE_THEME)

    def _lines(self, width: int) -> list[Strip]:
        if width != self._width:
            self._strips = []
            self._width = width
            for chunk in self.chunks:
                self._strips.extend(self._render_chunk(chunk, width))
        return self._strips


class LiveReply(Vertical):
    """The reply this process streams, appended to a ``Markdown`` by a ``MarkdownStream``.

    Chunks are coalesced for FLUSH_SECONDS: each append costs a re-parse of the
    last block plus a layout and repaint, so the repaint rate, not the chunk
    rate, decides the CPU a reply costs. Finished blocks move out of the
    ``Markdown`` widget into ``FrozenBlocks`` (see there).
    """

    def __init__(self, message: Message) -> None:
        super().__init__(classes="message -assistant -live")
        self.message = message
        self.parts: list[str] = []
        self.header = Static(message_header(message), classes="live-header")
        self.frozen = FrozenBlocks()
        self.markdown = Markdown("", classes="live-body")
        self.stream: MarkdownStream | None = None
        self.pending: list[str] = []
        #: the text in the Markdown widget (after the frozen blocks)
        self.tail = ""
        self.timer: Timer | None = None
        self._flushing = asyncio.Lock()

    def compose(self):  # type: ignore[no-untyped-def]
        """Header, finished blocks, then the streaming Markdown."""
        yield self.header
        yield self.frozen
        yield self.markdown

    async def write(self, text: str) -> None:
        """Append a piece of the reply (shown at most every FLUSH_SECONDS)."""
        self.parts.append(text)
        self.pending.append(text)
        if self.timer is None:
            # providers send many small chunks a second; re-parsing the Markdown
            # tail for each one costs far more CPU than a short coalescing delay
            self.timer = self.set_timer(FLUSH_SECONDS, self._flush)

    async def _flush(self) -> None:
        self.timer = None
        async with self._flushing:
            if not self.pending:
                return
            text = "".join(self.pending)
            self.pending.clear()
            self.tail += text
            split = freeze_point(self.tail)
            if not split:
                if self.stream is None:
                    self.stream = Markdown.get_stream(self.markdown)
                await self.stream.write(text)
                return
            # move the finished blocks out, restart the Markdown with the open one
            done, self.tail = self.tail[:split], self.tail[split:]
            await self._stop_stream()
            with self.app.batch_update():
                self.frozen.add(done)
                await self.markdown.update(self.tail)

    async def _stop_stream(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.stop()

    async def close(self) -> None:
        """Flush and stop the stream."""
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        await self._flush()
        await self._stop_stream()

    @property
    def text(self) -> str:
        """What has arrived so far."""
        return "".join(self.parts)


class ChatView(VerticalScroll, can_focus=True):
    """Messages of the open session; asks for older pages when scrolled to the top."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "select_previous", "Previous message", show=False),
        Binding("down", "select_next", "Next message", show=False),
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

    # ---- content -----------------------------------------------------------

    async def show_session(
        self, session_id: int | None, messages: list[Message], *, has_older: bool
    ) -> None:
        """Replace the view with a session's last page."""
        self.session_id = session_id
        self.selected = None
        self.views = {}
        await self.remove_children()
        views = [MessageView(m) for m in messages]
        self.views = {v.message.id: v for v in views}
        self.has_older = has_older
        self.loading_older = False
        if views:
            await self.mount_all(views)
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
