from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from app.api.deps import DatabaseDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(db: DatabaseDep) -> dict[str, Any]:
    """Open to everyone: the process is up and the database answers."""
    with db.reading() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok"}
