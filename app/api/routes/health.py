from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from sqlmodel import Session

from app.api.deps import ContextDep

router = APIRouter(tags=["health"])


def _database_answers(session: Session) -> None:
    session.execute(text("SELECT 1"))


@router.get("/healthz")
async def healthz(ctx: ContextDep) -> dict[str, Any]:
    """Open to everyone: the process is up and the database answers.

    Probes from many places at once share one query (``app.db.shared_reads``).
    """
    await ctx.shared_reads.read("healthz", _database_answers)
    return {"status": "ok"}
