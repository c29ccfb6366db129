"""Request dependencies of the UI: context, database, signed-in caller, CSRF-checked form.

No dependency opens a transaction: each handler runs its own units of work on the ``Database``
(``db.reading()``/``db.writing()`` in a sync handler, ``await db.read``/``db.write`` in an
async one), so a request's writes commit inside its handler. Dependencies that only read app
state are async, so they cost no worker-thread trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from app.db.session import Database
from app.problems import ForbiddenError
from app.services.context import AppContext
from app.services.tokens import Caller, Role
from app.ui import auth, csrf
from app.ui.errors import LoginRequiredError


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_database(ctx: ContextDep) -> Database:
    return ctx.db


DatabaseDep = Annotated[Database, Depends(get_database)]


def current_caller(request: Request, ctx: ContextDep) -> Caller:
    # A sync dependency, so on a worker thread: the token is read in a read-only unit of work
    # and its use recorded at most once a minute (see ``auth.session_caller``).
    caller = auth.session_caller(ctx.db, request.session, now=ctx.clock.now())
    if caller is None:
        raise LoginRequiredError(request)
    request.state.caller = caller
    return caller


def _require(minimum: Role) -> Callable[[Caller], Awaitable[Caller]]:
    async def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.role.at_least(minimum):
            raise ForbiddenError(
                f"This needs the {minimum.value} role; you are signed in as {caller.name} "
                f"({caller.role.value}).",
                required_role=minimum.value,
            )
        return caller

    return dependency


RequireViewer = Annotated[Caller, Depends(_require(Role.viewer))]
RequireOperator = Annotated[Caller, Depends(_require(Role.operator))]
RequireAdmin = Annotated[Caller, Depends(_require(Role.admin))]


async def csrf_form(request: Request) -> FormData:
    """The submitted form, after its CSRF token was checked against the session's."""
    form = await request.form()
    submitted = form.get(csrf.FIELD)
    token = submitted if isinstance(submitted, str) else request.headers.get(csrf.HEADER)
    if not csrf.is_valid(request.session, token):
        raise ForbiddenError(
            "The form's security token is missing or out of date, so nothing was changed. "
            "Reload the page and try again.",
            reason="csrf",
        )
    return form


CsrfForm = Annotated[FormData, Depends(csrf_form)]
