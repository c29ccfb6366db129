"""API tokens: printed once, stored as a SHA-256 hash, roles viewer < operator < admin."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from sqlmodel import Session

from app.db.models import ApiToken
from app.db.repos.tokens import TokenRepository
from app.db.session import Database, is_busy_error
from app.logging import get_logger
from app.problems import InvalidInputError, NotFoundError

log = get_logger(__name__)

TOKEN_PREFIX = "pimr_"


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class Caller:
    token_id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.name} ({self.role.value})"


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough; no salt is needed.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, role: str, name: str, now: datetime) -> tuple[str, ApiToken]:
    """Create a token; the plaintext is returned once and never stored."""
    try:
        parsed_role = Role(role)
    except ValueError:
        raise InvalidInputError(
            f"unknown role {role!r}", [("role", "must be one of viewer, operator, admin")]
        ) from None
    clean_name = name.strip()
    if not clean_name or len(clean_name) > 200:
        raise InvalidInputError("bad token name", [("name", "must be 1 to 200 characters")])
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=clean_name,
        role=parsed_role.value,
        token_hash=hash_token(plaintext),
        prefix=plaintext[: len(TOKEN_PREFIX) + 6],
        created_at=now,
    )
    TokenRepository(session).add(row)
    return plaintext, row


LAST_USED_RESOLUTION = timedelta(seconds=60)
"""``last_used_at`` is rewritten only once it is at least this old: a busy client costs one
small write a minute, not one a request, and a read request writes nothing in between."""


def use_is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def _stamp_use(session: Session, token_id: int, now: datetime) -> None:
    # Read again inside the write unit, so requests racing each other write once.
    repo = TokenRepository(session)
    current = repo.get(token_id)
    if (
        current is not None
        and current.revoked_at is None
        and use_is_stale(current.last_used_at, now)
    ):
        repo.record_use(current, now)


def _log_skipped_stamp(exc: Exception, token_id: int) -> None:
    # The stamp is bookkeeping: a database too busy to take it does not fail the request.
    log.warning("auth.last_used_skipped", token_id=token_id, error=type(exc).__name__)


def record_use_if_stale(db: Database, row: ApiToken, now: datetime) -> None:
    """Stamp ``last_used_at`` in a write unit of its own, unless it is fresh.

    Synchronous, for sync handlers and dependencies on worker threads.
    """
    if row.id is None or not use_is_stale(row.last_used_at, now):
        return
    try:
        with db.writing() as session:
            _stamp_use(session, row.id, now)
    except Exception as exc:
        if not is_busy_error(exc):
            raise
        _log_skipped_stamp(exc, row.id)


def authenticate(db: Database, token: str, *, now: datetime) -> Caller | None:
    """The caller behind an API token, read in a read unit; None if unknown or revoked."""
    with db.reading() as session:
        row = TokenRepository(session).get_active_by_hash(hash_token(token))
    if row is None or row.id is None:
        return None
    record_use_if_stale(db, row, now)
    return Caller(token_id=row.id, name=row.name, role=Role(row.role))


VERIFIED_FOR_SECONDS = 5.0
"""How long a verified token is trusted without reading it again. A token revoked through this
process's API is forgotten at once; one revoked elsewhere (the CLI, another worker) is refused
everywhere within this many seconds."""


@dataclass
class _Verified:
    caller: Caller
    last_used_at: datetime | None
    until: float


class VerifiedTokens:
    """Tokens verified in the last few seconds, by hash, so an API request reads no token row.

    A busy client sends its token many times a second; reading the row every time costs a
    worker-thread trip and a query per request. Used on the event loop only (not thread-safe);
    bounded, oldest entry out first.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float = VERIFIED_FOR_SECONDS,
        max_entries: int = 1024,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[str, _Verified] = OrderedDict()

    def get(self, token_hash: str) -> _Verified | None:
        entry = self._entries.get(token_hash)
        if entry is not None and entry.until <= self._monotonic():
            del self._entries[token_hash]
            return None
        return entry

    def put(self, token_hash: str, caller: Caller, last_used_at: datetime | None) -> _Verified:
        entry = _Verified(caller, last_used_at, self._monotonic() + self.ttl_seconds)
        self._entries[token_hash] = entry
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def forget(self, token_id: int) -> None:
        for digest in [d for d, e in self._entries.items() if e.caller.token_id == token_id]:
            del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()


def _active_token(session: Session, token_hash: str) -> tuple[Caller, datetime | None] | None:
    row = TokenRepository(session).get_active_by_hash(token_hash)
    if row is None or row.id is None:
        return None
    return Caller(token_id=row.id, name=row.name, role=Role(row.role)), row.last_used_at


async def authenticate_async(
    db: Database, verified: VerifiedTokens, token: str, *, now: datetime
) -> Caller | None:
    """``authenticate`` for async code: a token verified moments ago costs no database trip."""
    digest = hash_token(token)
    entry = verified.get(digest)
    if entry is None:
        found = await db.read(partial(_active_token, token_hash=digest))
        if found is None:
            return None
        entry = verified.put(digest, *found)
    if use_is_stale(entry.last_used_at, now):
        entry.last_used_at = now
        try:
            await db.write(partial(_stamp_use, token_id=entry.caller.token_id, now=now))
        except Exception as exc:
            if not is_busy_error(exc):
                raise
            _log_skipped_stamp(exc, entry.caller.token_id)
    return entry.caller


def revoke_token(session: Session, *, token_id: int, now: datetime) -> ApiToken:
    repo = TokenRepository(session)
    row = repo.get(token_id)
    if row is None:
        raise NotFoundError(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
        session.add(row)
    return row
