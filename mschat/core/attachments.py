"""Files that come with a question: what is accepted, and how a model is shown them.

Images (PNG, JPEG, WebP, GIF, recognised by their first bytes, whatever their
name says) go to models that see as image parts; text files (a known extension,
or any name whose content is UTF-8) are inlined in the question with their
name. Anything else is refused in one line before anything is stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mschat.core.errors import InvalidInput
from mschat.core.models import AttachmentInfo, Message
from mschat.core.tokens import IMAGE_TOKENS
from mschat.providers.base import ChatMessage, ImagePart

if TYPE_CHECKING:
    from mschat.store.contract import Store

#: the defaults of ``attachments.max_bytes`` and ``attachments.max_count``
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_COUNT = 10

#: a name's extension -> the type of a text file (other UTF-8 files: text/plain)
TEXT_TYPES = {
    **dict.fromkeys(
        (".txt", ".text", ".log", ".out", ".err", ".ini", ".cfg", ".conf", ".env", ".rst"),
        "text/plain",
    ),
    **dict.fromkeys((".md", ".markdown", ".mdx"), "text/markdown"),
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    **dict.fromkeys((".json", ".jsonl", ".ndjson", ".geojson"), "application/json"),
    **dict.fromkeys((".yaml", ".yml"), "application/yaml"),
    ".toml": "application/toml",
    **dict.fromkeys((".xml", ".svg"), "application/xml"),
    **dict.fromkeys((".html", ".htm"), "text/html"),
    ".css": "text/css",
    ".sql": "application/sql",
    **dict.fromkeys((".diff", ".patch"), "text/x-diff"),
    **dict.fromkeys(
        (
            ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".c", ".h", ".cc",
            ".cpp", ".hpp", ".cs", ".java", ".kt", ".kts", ".go", ".rs", ".rb", ".php", ".pl",
            ".lua", ".r", ".swift", ".scala", ".hs", ".ml", ".ex", ".exs", ".erl", ".clj",
            ".dart", ".vue", ".svelte", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat",
            ".tex", ".proto", ".graphql", ".gradle", ".cmake", ".mk", ".dockerfile", ".tf",
            ".nix", ".zig", ".jl", ".m", ".vim", ".el", ".scss", ".less", ".ipynb",
        ),
        "text/x-source",
    ),
}  # fmt: skip

#: files known by their whole name
TEXT_NAMES = frozenset({"makefile", "dockerfile", "readme", "license", ".gitignore"})

#: a file's first bytes -> its image type
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)

#: what may not stay in a file's name: path separators and control characters
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


@dataclass(frozen=True, slots=True)
class Limits:
    """How many files a question may carry and how big each may be."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_count: int = DEFAULT_MAX_COUNT


#: a file ready to store: what the message lists, and the content
Prepared = tuple[AttachmentInfo, bytes]


def image_type(data: bytes) -> str | None:
    """The image type these bytes start with (PNG, JPEG, GIF, WebP), if any."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def safe_name(name: str) -> str:
    """A file's name without folders or control characters, at most 200 characters."""
    base = re.split(r"[/\\]", name.strip())[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip() or "file"
    return cleaned[:200]


def _text_type(name: str, data: bytes) -> str | None:
    """The type of a text file, or None when ``data`` is not UTF-8 text."""
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lowered = name.lower()
    extension = lowered[lowered.rfind(".") :] if "." in lowered else ""
    return TEXT_TYPES.get(extension, "text/plain")


def size_text(count: int) -> str:
    """A size as people read it: 512 bytes, 4.0 KB, 12.3 MB."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def prepare(name: str, data: bytes, limits: Limits) -> Prepared:
    """Check one file and describe it; InvalidInput (one line) when it is refused."""
    shown = safe_name(name)
    if len(data) > limits.max_bytes:
        # the size read may be cut short (a front end reads one byte past the limit)
        raise InvalidInput(
            f"{shown} is larger than {size_text(limits.max_bytes)}, the most a file may be "
            "(attachments.max_bytes)"
        )
    if not data:
        raise InvalidInput(f"{shown} is empty")
    mime = image_type(data) or _text_type(shown, data)
    if mime is None:
        raise InvalidInput(
            f"{shown} is neither an image (PNG, JPEG, WebP, GIF) nor UTF-8 text; "
            "only those can be attached"
        )
    return AttachmentInfo(hashlib.sha256(data).hexdigest(), shown, mime, len(data)), data


def check_count(count: int, limits: Limits) -> None:
    """Refuse more files than one question may carry."""
    if count > limits.max_count:
        raise InvalidInput(
            f"{count} files attached; a question may carry at most {limits.max_count} "
            "(attachments.max_count)"
        )


def prepare_all(files: Sequence[tuple[str, bytes]], limits: Limits) -> list[Prepared]:
    """Check the files of one question (their number first, then each)."""
    check_count(len(files), limits)
    return [prepare(name, data, limits) for name, data in files]


def check_visible(files: Iterable[AttachmentInfo], model: str, vision: bool) -> None:
    """Refuse images for a model that cannot see them, before anything is sent."""
    images = [info.name for info in files if info.is_image]
    if images and not vision:
        raise InvalidInput(
            f"model {model} cannot see images ({', '.join(images)})",
            hint='pick a model that can, or set vision = true in [models."provider/name"]',
        )


def estimate_files(message: Message) -> int:
    """A conservative token count of a stored message's files (for paging history)."""
    return sum(
        IMAGE_TOKENS if info.is_image else info.size // 3 + 16 for info in message.attachments
    )


def chat_message(message: Message, files: Mapping[str, bytes], vision: bool) -> ChatMessage:
    """A stored turn as the model is shown it: text files inlined, images attached.

    A file whose content is not in ``files`` (or an image for a model that does
    not see) is mentioned by name, so the model knows something was there.
    """
    if not message.attachments:
        return ChatMessage(message.role, message.content)
    parts = [message.content]
    images: list[ImagePart] = []
    for info in message.attachments:
        data = files.get(info.sha256)
        if info.is_image and vision and data is not None:
            images.append(ImagePart(info.mime, data))
        elif not info.is_image and data is not None:
            text = data.decode("utf-8", "replace")
            parts.append(f'<file name="{info.name}">\n{text}\n</file>')
        else:
            parts.append(f"[{info.name}: not shown to this model]")
    return ChatMessage(message.role, "\n\n".join(parts), images=tuple(images))


def wanted_files(history: Iterable[Message], vision: bool) -> list[str]:
    """The contents a context needs: every text file, and images if the model sees."""
    return [
        info.sha256
        for message in history
        for info in message.attachments
        if vision or not info.is_image
    ]


def save_files(store: Store, rows: list[dict[str, Any]]) -> None:
    """Store the files of imported rows (``files``: prepared) and list them on the rows.

    Call it inside the transaction that inserts the rows.
    """
    for row in rows:
        files: list[Prepared] = row.pop("files", None) or []
        for info, data in files:
            store.save_attachment(info, data)
        if files:
            row["attachments"] = tuple(info for info, _ in files)
