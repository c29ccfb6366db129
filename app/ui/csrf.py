"""A CSRF token per session: a hidden field on every form, checked on every POST.

The session cookie is also ``SameSite=Strict``; the token is the second, explicit line of
defence, and it covers the sign-in form too (the token is created with the session).
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any

FIELD = "csrf_token"
HEADER = "x-csrf-token"
_KEY = "csrf"


def ensure_token(session: MutableMapping[str, Any]) -> str:
    token = session.get(_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_KEY] = token
    return token


def rotate(session: MutableMapping[str, Any]) -> str:
    """A new token, e.g. at sign-in, so a token seen before signing in is worth nothing after."""
    session[_KEY] = secrets.token_urlsafe(32)
    return str(session[_KEY])


def is_valid(session: MutableMapping[str, Any], submitted: str | None) -> bool:
    expected = session.get(_KEY)
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    return secrets.compare_digest(expected.encode(), submitted.encode())
