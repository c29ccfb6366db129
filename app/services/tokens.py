"""API tokens: printed once, stored as a SHA-256 hash, roles viewer < operator < admin."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session

from app.db.models import ApiToken
from app.db.repos.tokens import TokenRepository
from app.problems import InvalidInputError, NotFoundError

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


def authenticate(session: Session, token: str, *, now: datetime) -> Caller | None:
    row = TokenRepository(session).get_active_by_hash(hash_token(token))
    if row is None or row.id is None:
        return None
    TokenRepository(session).record_use(row, now)
    return Caller(token_id=row.id, name=row.name, role=Role(row.role))


def revoke_token(session: Session, *, token_id: int, now: datetime) -> ApiToken:
    repo = TokenRepository(session)
    row = repo.get(token_id)
    if row is None:
        raise NotFoundError(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
        session.add(row)
    return row
