"""Request-scoped dependencies as ``Annotated`` aliases.

No dependency opens a transaction: a handler runs its own units of work on the ``Database``
(``db.reading()``/``db.writing()`` in a sync handler, ``await db.read``/``db.write`` in an
async one), so every commit happens inside the handler and no session outlives its unit.

The dependencies themselves are async and only read app state: a sync dependency would cost a
worker-thread trip per request for nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.db.session import Database
from app.services.context import AppContext


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_database(ctx: ContextDep) -> Database:
    return ctx.db


DatabaseDep = Annotated[Database, Depends(get_database)]
