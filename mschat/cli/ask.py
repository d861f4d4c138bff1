"""``mschat ask``: one question, its answer streamed."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from mschat.cli.approval import checked_tools, tool_approval
from mschat.cli.base import TEXT, Context, fail, run_async
from mschat.core.errors import MschatError


def read_stdin() -> str:
    """Piped stdin as text (bytes that are not UTF-8 become U+FFFD); "" on a terminal."""
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        return ""
    buffer = getattr(stdin, "buffer", None)
    if buffer is None:
        return stdin.read()
    return bytes(buffer.read()).decode("utf-8", "replace")


def edit_prompt(prompt: str | None) -> str:
    """The prompt written in $VISUAL or $EDITOR, prefilled with ``prompt``."""
    draft = f"{prompt}\n" if prompt else ""
    # bytes in and out: the editor may save bytes that are not UTF-8
    edited = click.edit(draft.encode("utf-8"), extension=".md")
    text = edited.decode("utf-8", "replace").rstrip() if edited else ""
    if not text.strip():
        fail("the editor left the prompt empty; nothing was asked")
    return text


def read_attachment(path: str, limit: int) -> tuple[str, bytes]:
    """A file to attach (``-`` is stdin), read up to one byte past ``limit`` (the core
    refuses it then, without reading all of a huge file or a device)."""
    if path == "-":
        stdin = sys.stdin.buffer if sys.stdin is not None else None
        return "stdin", bytes(stdin.read(limit + 1)) if stdin is not None else b""
    try:
        with open(path, "rb") as file:
            return os.path.basename(path), file.read(limit + 1)
    except OSError as exc:
        fail(f"cannot attach {path}: {exc.strerror or exc}")


def read_prompt(prompt: str | None, *, editor: bool = False, stdin: bool = True) -> str:
    """The prompt from the argument (or the editor) and piped stdin, appended as context
    (unless stdin is attached as a file: ``-a -``)."""
    if editor:
        prompt = edit_prompt(prompt)
    piped = read_stdin() if stdin else ""
    if prompt and piped.strip():
        return f"{prompt}\n\n{piped}"
    return prompt if prompt is not None else piped


@click.command()
@click.argument("prompt", required=False, type=TEXT)
@click.option("-s", "--session", "session_ref", type=TEXT, help="Session id or title to continue.")
@click.option(
    "-c", "--continue", "continue_", is_flag=True, help="Continue the most recent session."
)
@click.option("--new", "new_session", is_flag=True, help="Start a new session (the default).")
@click.option("-m", "--model", type=TEXT, help="Model name, provider/model or alias.")
@click.option("--system", type=TEXT, help="System message for this session.")
@click.option("--temperature", type=float, help="Sampling temperature (0-2).")
@click.option("--max-tokens", type=int, help="Maximum tokens in the reply.")
@click.option("-e", "--editor", is_flag=True, help="Write the prompt in $VISUAL or $EDITOR first.")
@click.option("--no-stream", is_flag=True, help="Print the reply once it is complete.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: reply, session, usage."
)
@click.option("-u", "--usage", "show_usage", is_flag=True, help="Print token usage on stderr.")
@click.option(
    "-a",
    "--attach",
    "attach",
    multiple=True,
    type=TEXT,
    metavar="FILE",
    help="Attach an image or a text file (repeatable; - reads stdin).",
)
@click.option(
    "--allow-tool",
    "allow_tools",
    multiple=True,
    type=TEXT,
    metavar="SERVER/TOOL",
    help="Run this MCP tool without asking (repeatable; SERVER/* for all of a server's).",
)
@click.pass_obj
def ask(
    ctx: Context,
    prompt: str | None,
    session_ref: str | None,
    continue_: bool,
    new_session: bool,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    editor: bool,
    no_stream: bool,
    as_json: bool,
    show_usage: bool,
    attach: tuple[str, ...],
    allow_tools: tuple[str, ...],
) -> None:
    """Ask one question and stream the answer.

    The prompt comes from the argument, from $EDITOR (-e, prefilled with the
    argument), from piped stdin, or both (stdin is appended to the prompt as
    context). Each ask starts a new session unless -c or -s is given. Images
    (PNG, JPEG, WebP, GIF) go to models that see them, text files are inlined.

    \b
    Examples:
      mschat ask "Explain WAL mode in two sentences"
      mschat ask -c "Now compare it with rollback journals"
      mschat ask -e                  write a long prompt in your editor
      cat error.log | mschat ask "What went wrong?"
      mschat ask -m openai/gpt-4o-mini --json "Hi" | jq .reply
      mschat ask -a photo.jpg "What is in this picture?"
      mschat ask -a main.py -a test_main.py "Why does the test fail?"
      xclip -o -t image/png | mschat ask -a - "Read the text in this screenshot"
      mschat ask --allow-tool files/read_file "Summarise notes.md"
    """
    if sum([bool(session_ref), continue_, new_session]) > 1:
        raise click.UsageError("use only one of --session, --continue and --new")
    if attach.count("-") > 1:
        raise click.UsageError("stdin can be attached once (-a -)")
    try:
        allowed = checked_tools(allow_tools)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-tool") from None
    files = []
    if attach:
        limit = int(ctx.config().get("attachments", "max_bytes"))
        files = [read_attachment(path, limit) for path in attach]
    text = read_prompt(prompt, editor=editor, stdin="-" not in attach)
    if not text.strip():
        fail("the prompt is empty; pass it as an argument, with -e or on stdin")

    from mschat.cli.ask_render import AskRenderer

    renderer = AskRenderer(
        stream=not no_stream and not as_json, as_json=as_json, show_usage=show_usage
    )

    async def body(services: Any) -> int:
        manager = services.manager
        user = await manager.local_user()
        session_id = None
        if session_ref:
            session_id = (await manager.find_session(user, session_ref)).id
        elif continue_:
            last = await manager.last_session(user)
            if last is None:
                raise MschatError("there is no session to continue; ask without -c first")
            session_id = last.id
        events = manager.ask(
            user,
            text,
            session_id=session_id,
            new_session=session_id is None,
            model=model,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            attachments=files,
            approve=tool_approval(allowed, renderer.spinner),
        )
        return await renderer.consume(events)

    sys.exit(run_async(ctx, body, notice=True, on_interrupt=renderer.interrupted))
