"""Request dependencies of the UI: context, database, signed-in caller, CSRF-checked form."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.datastructures import FormData

from app.problems import ForbiddenError
from app.services.context import AppContext
from app.services.tokens import Caller, Role
from app.ui import auth, csrf
from app.ui.errors import LoginRequiredError


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_db(ctx: ContextDep) -> Iterator[Session]:
    """One unit of work per request: commit when the handler returns, roll back on any error."""
    session = ctx.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbDep = Annotated[Session, Depends(get_db, scope="function")]


def current_caller(request: Request, ctx: ContextDep) -> Caller:
    # A short session of its own, so a long action (start) holds no transaction open for this.
    with ctx.session_factory() as db:
        caller = auth.session_caller(db, request.session)
    if caller is None:
        raise LoginRequiredError(request)
    request.state.caller = caller
    return caller


def _require(minimum: Role) -> Callable[[Caller], Caller]:
    def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
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
