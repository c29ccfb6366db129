"""Bearer token -> caller with a role; viewer < operator < admin.

The token is looked up in a read-only unit of work, so an authenticated GET writes nothing. When
the token was last used is recorded in a short write unit of its own, at most once a minute per
token (``LAST_USED_RESOLUTION``): a busy client costs one small write a minute, not one a request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import ContextDep, DatabaseDep
from app.db.repos.tokens import TokenRepository
from app.db.session import Database, is_busy_error
from app.logging import get_logger
from app.problems import ForbiddenError, UnauthenticatedError
from app.services.tokens import Caller, Role, hash_token

log = get_logger(__name__)

LAST_USED_RESOLUTION = timedelta(seconds=60)
"""``last_used_at`` is rewritten only once it is at least this old."""


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise UnauthenticatedError("send an API token as 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def use_is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def record_use_if_stale(db: Database, token_id: int, now: datetime) -> None:
    """Stamp ``last_used_at`` in a write unit of its own, unless another request just did.

    Runs on a worker thread. The row is read again under the writer's transaction, so requests
    racing each other write once. The stamp is bookkeeping: a database too busy to take it does
    not fail the request.
    """
    try:
        with db.writing() as session:
            repo = TokenRepository(session)
            row = repo.get(token_id)
            if row is not None and row.revoked_at is None and use_is_stale(row.last_used_at, now):
                repo.record_use(row, now)
    except Exception as exc:
        if not is_busy_error(exc):
            raise
        log.warning("auth.last_used_skipped", token_id=token_id, error=type(exc).__name__)


def current_caller(request: Request, db: DatabaseDep, ctx: ContextDep) -> Caller:
    """A sync dependency: it runs on a worker thread, so its units of work block no event loop."""
    token_hash = hash_token(_bearer(request))
    with db.reading() as session:
        row = TokenRepository(session).get_active_by_hash(token_hash)
    if row is None or row.id is None:
        raise UnauthenticatedError("the API token is unknown or revoked")
    now = ctx.clock.now()
    if use_is_stale(row.last_used_at, now):
        record_use_if_stale(db, row.id, now)
    return Caller(token_id=row.id, name=row.name, role=Role(row.role))


def _require(minimum: Role):  # type: ignore[no-untyped-def]
    def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.role.at_least(minimum):
            raise ForbiddenError(
                f"this needs the {minimum.value} role; the token {caller.name!r} "
                f"is {caller.role.value}",
                required_role=minimum.value,
            )
        return caller

    return dependency


RequireViewer = Annotated[Caller, Depends(_require(Role.viewer))]
RequireOperator = Annotated[Caller, Depends(_require(Role.operator))]
RequireAdmin = Annotated[Caller, Depends(_require(Role.admin))]
