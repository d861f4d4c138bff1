"""Secrets out of text: credentials in URLs and known keys become a mask.

A base URL may carry a password (``https://user:pw@host/v1``) or a key in its
query (``?api_key=…``). Error lines, logs, ``config show``, the database and
reprs show such URLs only through :func:`redact_url`, and any text that may
quote a request (a provider's error body, an exception) through
:func:`redact_text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "****"

#: query parameters that carry credentials (compared case-insensitively)
SECRET_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "token",
        "access_token",
        "auth",
        "password",
        "pass",
        "secret",
        "sig",
        "signature",
        "code",
    }
)

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def redact_url(url: str) -> str:
    """``url`` with its user info and secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_PARAMS for name, _ in pairs):
            query = urlencode(
                [(n, MASK if n.lower() in SECRET_PARAMS else v) for n, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URLs redacted, bearer tokens and the given secret strings masked."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _URL.sub(lambda m: redact_url(m.group()), text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
