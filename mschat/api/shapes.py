"""Every body, query and header of the HTTP API, declared once.

The models validate what comes in (``fields.validate`` turns their errors into
400s naming the field), build what goes out, and are the schemas of the OpenAPI
document (``openapi.py``). Limits come from the core where it has them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mschat.core import models as core
from mschat.core.rules import MAX_TEMPERATURE, MAX_TOKENS_LIMIT

#: SQLite integers are signed 64-bit; larger ids can only be "not found"
MAX_ID = 2**63 - 1
MAX_NAME = 256
MAX_TEXT = 1_000_000
MAX_TITLE = 200
MAX_PAGE = 500
MAX_OFFSET = 2**31
DEFAULT_PAGE = 50
SESSION_HEADER = "X-Mschat-Session"
#: Idempotency-Key values: 1 to 255 visible ASCII characters (a UUID fits)
KEY_PATTERN = r"^[!-~]{1,255}$"
#: "not blank": at least one character that is not whitespace
NOT_BLANK = r"\S"
#: what each pattern asks for, in words (error messages)
PATTERN_WORDS = {
    NOT_BLANK: "must not be empty",
    KEY_PATTERN: "must be 1 to 255 visible ASCII characters (no spaces)",
}


# ---- value types ----------------------------------------------------------------


def _clean_text(value: str) -> str:
    """Text must be storable: valid Unicode (no lone surrogates) and no NUL."""
    if "\x00" in value:
        raise PydanticCustomError("nul", "{label} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("not_utf8", "{label} must be valid UTF-8 text") from None
    return value


def _digits(value: Any) -> Any:
    """A digit string becomes an integer (query strings, headers, bridges sending text)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isascii() and stripped.isdigit():
            return int(stripped)
    return value


def _flag(value: Any) -> Any:
    """A query-string boolean: true/false, 1/0, yes/no, on/off."""
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    return value


Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_clean_text)]
Question = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK), AfterValidator(_clean_text)
]
UserName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=NOT_BLANK,
        description="an API user's name (surrounding spaces are removed)",
        examples=["shiyemin"],
    ),
    AfterValidator(_clean_text),
    AfterValidator(str.strip),
]
Name = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME, pattern=NOT_BLANK),
    AfterValidator(_clean_text),
]
Title = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TITLE, pattern=NOT_BLANK),
    AfterValidator(_clean_text),
]
ModelName = Annotated[
    str,
    Field(
        max_length=MAX_NAME,
        description="provider/model or an alias (`mschat models`, GET /v1/models)",
    ),
    AfterValidator(_clean_text),
]
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_digits)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET), BeforeValidator(_digits)]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE), BeforeValidator(_digits)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Temperature = Annotated[float, Field(ge=0, le=MAX_TEMPERATURE)]
MaxTokens = Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)]
UserStatus = Annotated[core.Status, Field(strict=False)]


class Shape(BaseModel):
    """A JSON object the API reads: strict types, and null is the same as leaving a
    field out, except in `keeps_null` fields (where null clears a setting)."""

    model_config = ConfigDict(strict=True)
    keeps_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            fields = cls.model_fields
            return {
                key: value
                for key, value in data.items()
                if value is not None or key in cls.keeps_null or key not in fields
            }
        return data


class Closed(Shape):
    """A request body whose unknown fields are refused (a typo must not pass)."""

    model_config = ConfigDict(extra="forbid")


# ---- /chat and /chat-stream ------------------------------------------------------


class AttachmentIn(Closed):
    """A file of a question: its content in base64 (``data``), or a URL mschat fetches."""

    name: str | None = Field(default=None, max_length=MAX_NAME, description="its file name")
    data: str | None = Field(default=None, description="the content, base64")
    url: str | None = Field(default=None, max_length=8192, description="an http(s) URL")

    @model_validator(mode="after")
    def _one_source(self) -> AttachmentIn:
        if (self.data is None) == (self.url is None):
            raise PydanticCustomError("attachment", "an attachment needs data or url (one)")
        if self.data is not None:
            import base64
            import binascii

            try:
                base64.b64decode(self.data, validate=True)
            except (binascii.Error, ValueError):
                raise PydanticCustomError("attachment", "data must be base64") from None
        return self

    def as_core(self) -> tuple[str, bytes] | str:
        """The file as the core takes it: (name, content), or the URL."""
        if self.url is not None:
            return self.url
        import base64

        return self.name or "file", base64.b64decode(self.data or "")


class ChatRequest(Shape):
    """POST /chat and /chat-stream."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "Who are you?", "user": "shiyemin"}]}
    )

    message: Question = Field(description='the question; "reset" starts a new session')
    user: UserName
    session: Id | None = Field(
        default=None,
        description="ask in this session (own or public) instead of the current one; "
        "a digit string works too",
    )
    attachments: list[AttachmentIn] = Field(
        default_factory=list, description="images and text files that come with the question"
    )


class Usage(BaseModel):
    """Token usage as OpenAI reports it (null counts: the provider did not say)."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None

    @classmethod
    def of(cls, usage: core.Usage | None) -> Usage | None:
        """The usage of a reply, if the provider reported any."""
        if usage is None:
            return None
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class ChatResponse(BaseModel):
    """The answer of /chat (and the `done` event of /chat-stream)."""

    response: str
    session_id: int | None
    message_id: int | None
    model: str | None
    finish_reason: str | None
    usage: Usage | None
    history_trimmed: int = Field(description="older turns left out of the prompt")
    reset: bool = Field(default=False, description="true after the reset command")


class ChatStart(BaseModel):
    """The `start` event of /chat-stream: the question is stored."""

    session_id: int | None
    message_id: int | None
    model: str | None
    created_session: bool


class ChatDelta(BaseModel):
    """A `delta` event of /chat-stream: the next piece of the reply."""

    text: str


# ---- users and sessions ----------------------------------------------------------


class User(BaseModel):
    """A user's public settings (operations fields such as admin stay out)."""

    id: int
    user: str = Field(description="the name API callers use")
    name: str
    kind: core.UserKind
    status: core.Status
    model: str | None
    current_session_id: int | None
    system_msg: str | None
    show_public: bool
    attach: bool
    max_tokens: int
    temperature: float
    created: str
    updated: str
    modified: str

    @classmethod
    def of(cls, user: core.User) -> User:
        """The API's view of a stored user."""
        return cls(
            id=user.id,
            user=user.external_id,
            name=user.name,
            kind=core.UserKind(user.kind),
            status=core.Status(user.status),
            model=user.model,
            current_session_id=user.current_session_id,
            system_msg=user.system_msg,
            show_public=bool(user.show_public),
            attach=bool(user.attach),
            max_tokens=user.max_tokens,
            temperature=user.temperature,
            created=user.created,
            updated=user.updated,
            modified=user.modified,
        )


class UserPatch(Closed):
    """PATCH /users/{user}: any of these; null clears `system_msg` and `model`."""

    keeps_null = frozenset({"system_msg", "model"})

    name: Name | None = None
    system_msg: Text | None = None
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    show_public: bool | None = None
    attach: bool | None = None
    model: ModelName | None = Field(default=None, description="default model of new sessions")
    status: UserStatus | None = None
    current_session: Id | None = Field(
        default=None, description="switch to this session (the user becomes active)"
    )


class Session(BaseModel):
    """A session's settings and counts (its messages are listed separately)."""

    id: int
    title: str
    model: str | None
    system_msg: str | None
    public: bool
    origin: str
    creator_id: int
    creator: str | None
    message_count: int
    forked_from_id: int | None
    created: str
    updated: str
    modified: str

    @classmethod
    def of(cls, session: core.Session) -> Session:
        """The API's view of a stored session."""
        return cls(
            id=session.id,
            title=session.title,
            model=session.model,
            system_msg=session.system_msg,
            public=bool(session.public),
            origin=session.origin,
            creator_id=session.creator_id,
            creator=session.creator_name,
            message_count=session.message_count,
            forked_from_id=session.forked_from_id,
            created=session.created,
            updated=session.updated,
            modified=session.modified,
        )


class SessionCreate(Closed):
    """POST /users/{user}/sessions (every field optional)."""

    title: Title | None = None
    model: ModelName | None = None
    system_msg: Text | None = None
    public: bool | None = None
    current: bool | None = Field(default=None, description="make it the user's current session")


class SessionPatch(Closed):
    """PATCH /sessions/{id}: the acting user plus any of the settings."""

    keeps_null = frozenset({"system_msg"})

    user: UserName | None = Field(default=None, description="the acting user (or ?user=)")
    title: Title | None = None
    public: bool | None = None
    model: ModelName | None = None
    system_msg: Text | None = Field(default=None, description="null clears it")


class ActingUser(Closed):
    """The optional body of DELETE /sessions/{id}: the acting user (or ?user=)."""

    user: UserName | None = None


class SessionList(BaseModel):
    """A page of a user's sessions, most recent first."""

    sessions: list[Session]
    total: int
    limit: int
    offset: int
    current_session_id: int | None


class Attachment(BaseModel):
    """A file that came with a question (its content is not served)."""

    name: str
    mime: str
    size: int
    sha256: str


class Message(BaseModel):
    """One stored turn."""

    id: int
    session_id: int
    role: Literal["system", "user", "assistant"]
    content: str
    author_id: int | None
    author: str | None
    status: core.MessageStatus
    model: str | None
    created: str
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: int | None
    finish_reason: str | None
    error: str | None
    attachments: list[Attachment] = Field(default_factory=list)

    @classmethod
    def of(cls, message: core.Message) -> Message:
        """The API's view of a stored message."""
        return cls(
            id=message.id,
            session_id=message.session_id,
            role=message.role,  # type: ignore[arg-type]
            content=message.content,
            author_id=message.author_id,
            author=message.author_name,
            status=core.MessageStatus(message.status),
            model=message.model,
            created=message.created,
            tokens_in=message.tokens_in,
            tokens_out=message.tokens_out,
            latency_ms=message.latency_ms,
            finish_reason=message.finish_reason,
            error=message.error,
            attachments=[
                Attachment(name=a.name, mime=a.mime, size=a.size, sha256=a.sha256)
                for a in message.attachments
            ],
        )


class SessionPage(BaseModel):
    """A session and a page of its messages, oldest first."""

    session: Session
    messages: list[Message]
    has_more: bool
    next_before: int | None = Field(description="pass as ?before= for older messages")


class Deleted(BaseModel):
    """The answer of DELETE /sessions/{id}."""

    deleted: bool
    id: int


# ---- query strings and headers ----------------------------------------------------


class Params(Shape):
    """Path, query-string or header values: text, so numbers and flags are parsed;
    an empty value is the same as none."""

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value != ""}
        return data


class UserPath(Params):
    """`{user}` in /users/{user}…"""

    user: UserName


class IdPath(Params):
    """`{id}` in /sessions/{id}."""

    id: Id


class SessionListQuery(Params):
    """GET /users/{user}/sessions."""

    limit: PageSize = DEFAULT_PAGE
    offset: Offset = 0
    include_public: Flag | None = Field(
        default=None, description="also others' public sessions (default: show_public)"
    )


class SessionQuery(Params):
    """GET /sessions/{id}."""

    user: UserName = Field(description="the acting user")
    limit: PageSize = DEFAULT_PAGE
    before: Id | None = Field(default=None, description="only messages older than this id")


class UserQuery(Params):
    """The acting user of PATCH and DELETE /sessions/{id} (or `user` in the body)."""

    user: UserName | None = Field(default=None, description="the acting user")


class SessionHeader(Params):
    """The session a /v1 request continues."""

    session: Id | None = Field(
        default=None,
        alias="X-Mschat-Session",
        description="continue this session: only the trailing user message is appended",
    )


class IdempotencyHeader(Params):
    """A retry of a chat request sends the key of its first attempt."""

    key: str | None = Field(
        default=None,
        alias="Idempotency-Key",
        pattern=KEY_PATTERN,
        description="a retry with the same key (same user, same body, within 24 h) gets the "
        "first answer instead of asking again",
    )


# ---- OpenAI-compatible /v1 --------------------------------------------------------


class TextPart(BaseModel):
    """A text part of a message's content."""

    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    """Where an image part's image is: a base64 ``data:`` URL, or an http(s) URL."""

    url: str = Field(max_length=MAX_TEXT * 8)
    detail: str | None = None


class ImagePart(BaseModel):
    """An image part of a user message's content (for models that see)."""

    type: Literal["image_url"]
    image_url: ImageUrl


def _join_parts(value: Any) -> Any:
    """A content given as text parts becomes their text (null becomes empty)."""
    if value is None:
        return ""
    if isinstance(value, str) or not isinstance(value, list):
        return value
    pieces = []
    for index, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise PydanticCustomError(
                "text_part",
                f"{{label}}[{index}] must be a text part "
                '({"type": "text", "text": "..."}) or an image part '
                '({"type": "image_url", "image_url": {"url": "..."}})',
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise PydanticCustomError("text_part", f"{{label}}[{index}].text must be a string")
        pieces.append(text)
    return "".join(pieces)


Content = Annotated[
    str,
    Field(max_length=MAX_TEXT),
    BeforeValidator(_join_parts),
    AfterValidator(_clean_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "anyOf": [TextPart.model_json_schema(), ImagePart.model_json_schema()]
                    },
                },
                {"type": "null"},
            ]
        }
    ),
]
Role = Literal["system", "developer", "user", "assistant"]


class ChatMessage(Shape):
    """One message of a /v1 request (other fields, such as name, are ignored)."""

    keeps_null = frozenset({"content"})

    role: Role
    content: Content
    images: list[ImageUrl] = Field(
        default_factory=list,
        description="filled from the content's image_url parts (images of user messages)",
    )

    @model_validator(mode="before")
    @classmethod
    def _take_images(cls, data: Any) -> Any:
        """Image parts leave the content for ``images``; the text parts stay."""
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            return data
        parts = data["content"]
        images = [p for p in parts if isinstance(p, dict) and p.get("type") == "image_url"]
        if not images:
            return data
        text = [p for p in parts if not (isinstance(p, dict) and p.get("type") == "image_url")]
        found = []
        for part in images:
            url = (part.get("image_url") or {}).get("url")
            if not isinstance(url, str):
                raise PydanticCustomError(
                    "image_part", "{label}: an image part needs image_url.url, a string"
                )
            found.append({"url": url})
        return {**data, "content": text, "images": [*data.get("images", []), *found]}


class StreamOptions(Shape):
    """Options of a streamed /v1 answer."""

    include_usage: bool | None = None


class ChatCompletionRequest(Shape):
    """POST /v1/chat/completions; options mschat does not honour (tools…) are ignored."""

    model: ModelName | None = Field(
        default=None, description="default: the session's or the configured default"
    )
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: UserName | None = Field(
        default=None, description="the mschat user (default: api.default_user)"
    )
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = Field(
        default=None, description="must be 1: mschat answers with one choice"
    )


class AssistantMessage(BaseModel):
    """The reply of a completion."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class CompletionUsage(BaseModel):
    """Token usage of a completion (estimates where the provider said nothing)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """The answer of a non-streamed /v1/chat/completions."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str | None
    system_fingerprint: None = None
    choices: list[Choice]
    usage: CompletionUsage


def _absent(value: Any) -> bool:
    return value is None


class Delta(BaseModel):
    """What a chunk adds to the reply (fields it does not change are left out)."""

    role: Literal["assistant"] | None = Field(default=None, exclude_if=_absent)
    content: str | None = Field(default=None, exclude_if=_absent)


class ChunkChoice(BaseModel):
    """The one choice of a chunk."""

    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` line of a streamed /v1/chat/completions (then `data: [DONE]`)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str | None
    system_fingerprint: None = None
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = Field(
        default=None, description="with stream_options.include_usage: null, then in a last chunk"
    )


class ModelCard(BaseModel):
    """A usable model."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    """GET /v1/models."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---- everything else ---------------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong, in OpenAI's fields."""

    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(description="the offending field")
    code: str | None


class Error(BaseModel):
    """Every error of every endpoint (some add the partial answer's fields)."""

    error: ErrorDetail


class Health(BaseModel):
    """GET /healthz."""

    status: str
    version: str


class ServerSentEvent(BaseModel):
    """One server-sent event; `data` is JSON text (or `[DONE]` on /v1)."""

    event: str | None = Field(
        default=None, description="start, delta, done or error (/chat-stream)"
    )
    data: str
    id: str | None = None
    retry: int | None = None
