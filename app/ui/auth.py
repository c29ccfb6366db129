"""Signing in to the UI with an API token.

The session cookie (signed, HttpOnly, SameSite=Strict) holds the token's id and creation time,
never the token. Every request re-reads the token row, so revoking a token or changing its role
takes effect on the next click.

The token row is read in a read-only unit of work; when it was last used is recorded in a short
write unit of its own, at most once a minute per token (``record_use_if_stale``). Both are
synchronous: for sync handlers and dependencies, which run on worker threads.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from app.db.repos.tokens import TokenRepository
from app.db.session import Database
from app.logging import get_logger
from app.services.secrets import SecretBox
from app.services.tokens import Caller, Role, hash_token, record_use_if_stale
from app.settings import Settings
from app.ui import csrf

log = get_logger(__name__)

COOKIE_NAME = "pimr_ui_session"
SESSION_MAX_AGE_SECONDS = 8 * 3600
_TOKEN_ID = "token_id"
_TOKEN_MARK = "token_created_at"
_PURPOSE = b"pim-rollout/ui-session/v1"


def session_secret(box: SecretBox) -> str:
    """The cookie-signing key, derived from the service's secret key (shared by replicas)."""
    return box.derive_key(_PURPOSE)


def cookie_is_secure(settings: Settings) -> bool:
    return settings.public_url.lower().startswith("https://")


def sign_in(
    db: Database, http_session: MutableMapping[str, Any], *, token: str, now: datetime
) -> Caller | None:
    """Exchange a token for a session; the old session (and its CSRF token) is discarded."""
    plaintext = token.strip()
    if not plaintext:
        return None
    with db.reading() as session:
        row = TokenRepository(session).get_active_by_hash(hash_token(plaintext))
    if row is None or row.id is None:
        return None
    record_use_if_stale(db, row, now)
    http_session.clear()
    http_session[_TOKEN_ID] = row.id
    http_session[_TOKEN_MARK] = row.created_at.isoformat()
    csrf.rotate(http_session)
    return Caller(token_id=row.id, name=row.name, role=Role(row.role))


def sign_out(http_session: MutableMapping[str, Any]) -> None:
    http_session.clear()
    csrf.rotate(http_session)


def session_caller(
    db: Database, http_session: MutableMapping[str, Any], *, now: datetime
) -> Caller | None:
    """The caller behind a session, if its token still exists and is not revoked."""
    token_id = http_session.get(_TOKEN_ID)
    if not isinstance(token_id, int):
        return None
    with db.reading() as session:
        row = TokenRepository(session).get(token_id)
    # The creation time guards against a token id reused after the database was rebuilt.
    if (
        row is None
        or row.revoked_at is not None
        or row.created_at.isoformat() != http_session.get(_TOKEN_MARK)
    ):
        http_session.pop(_TOKEN_ID, None)
        http_session.pop(_TOKEN_MARK, None)
        return None
    record_use_if_stale(db, row, now)
    return Caller(token_id=token_id, name=row.name, role=Role(row.role))


def safe_next(target: str | None, default: str) -> str:
    """Only a path inside the UI may be a post-sign-in destination (no open redirect)."""
    if (
        target
        and (target == "/ui" or target.startswith(("/ui/", "/ui?")))
        and "\\" not in target
        and "\n" not in target
        and "\r" not in target
    ):
        return target
    return default
