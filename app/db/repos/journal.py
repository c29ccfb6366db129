from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.db.models import JournalEntry


class JournalRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, entry: JournalEntry) -> JournalEntry:
        self.session.add(entry)
        self.session.flush()
        return entry

    def get_by_key(self, idempotency_key: str) -> JournalEntry | None:
        statement = select(JournalEntry).where(JournalEntry.idempotency_key == idempotency_key)
        return self.session.exec(statement).first()

    def count_for_plan(self, plan_id: str, *, phase_key: str | None = None) -> int:
        statement = (
            select(func.count()).select_from(JournalEntry).where(JournalEntry.plan_id == plan_id)
        )
        if phase_key is not None:
            statement = statement.where(JournalEntry.phase_key == phase_key)
        return int(self.session.exec(statement).one())

    def list_for_plan(
        self,
        plan_id: str,
        *,
        phase_key: str | None = None,
        statuses: Sequence[str] | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> Sequence[JournalEntry]:
        statement = select(JournalEntry).where(JournalEntry.plan_id == plan_id)
        if phase_key is not None:
            statement = statement.where(JournalEntry.phase_key == phase_key)
        if statuses:
            statement = statement.where(col(JournalEntry.status).in_(statuses))
        order = col(JournalEntry.id).desc() if newest_first else col(JournalEntry.id)
        statement = statement.order_by(order).offset(offset)
        if limit is not None:
            statement = statement.limit(limit)
        return self.session.exec(statement).all()
