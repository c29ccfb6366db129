"""Counts read at scrape time, so every replica reports the same numbers."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.db.models import Phase, PimRequestRecord, Plan, WorkItem


class MetricsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def plans_by_state(self) -> dict[str, int]:
        statement = select(Plan.state, func.count()).group_by(col(Plan.state))
        return {state: int(count) for state, count in self.session.exec(statement).all()}

    def phases_by_state(self) -> dict[str, int]:
        statement = select(Phase.state, func.count()).group_by(col(Phase.state))
        return {state: int(count) for state, count in self.session.exec(statement).all()}

    def work_items_by_state(self) -> dict[str, int]:
        statement = select(WorkItem.state, func.count()).group_by(col(WorkItem.state))
        return {state: int(count) for state, count in self.session.exec(statement).all()}

    def requests_by_action_status(self) -> dict[tuple[str, str], int]:
        statement = select(PimRequestRecord.action, PimRequestRecord.status, func.count()).group_by(
            col(PimRequestRecord.action), col(PimRequestRecord.status)
        )
        return {
            (action, status): int(count)
            for action, status, count in self.session.exec(statement).all()
        }
