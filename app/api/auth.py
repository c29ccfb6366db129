"""Bearer token -> caller with a role; viewer < operator < admin.

The token is looked up in a read-only unit of work, so an authenticated GET writes nothing; when
it was last used is recorded in a short write unit of its own, at most once a minute per token.
A token verified in the last few seconds is taken from ``AppContext.verified_tokens`` without a
database trip (``app.services.tokens.VERIFIED_FOR_SECONDS``). Every dependency here is async
and does no blocking work, so a request costs no worker-thread trip before its handler.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import ContextDep
from app.problems import ForbiddenError, UnauthenticatedError
from app.services.tokens import Caller, Role, authenticate_async


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise UnauthenticatedError("send an API token as 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def current_caller(request: Request, ctx: ContextDep) -> Caller:
    caller = await authenticate_async(
        ctx.db, ctx.verified_tokens, _bearer(request), now=ctx.clock.now()
    )
    if caller is None:
        raise UnauthenticatedError("the API token is unknown or revoked")
    return caller


def _require(minimum: Role):  # type: ignore[no-untyped-def]
    async def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
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
