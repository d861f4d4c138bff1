"""The login cookie of ``serve-admin``: derived from the token, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

#: the cookie a successful login sets
COOKIE = "mschat_admin"
#: what the cookie's HMAC signs: a constant, so every instance with the token agrees
_PURPOSE = b"mschat serve-admin login v1"


def cookie_value(token: str) -> str:
    """The cookie's value for ``token``: an HMAC of it, so the cookie never holds the token."""
    return hmac.new(token.encode("utf-8"), _PURPOSE, hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    """Whether a typed token is the configured one (constant time)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def cookie_matches(given: str | None, token: str) -> bool:
    """Whether a request's cookie proves a login with ``token`` (constant time)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), cookie_value(token).encode())
