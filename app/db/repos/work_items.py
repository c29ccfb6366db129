from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from app.db.models import WorkItem


class WorkItemRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_all(self, items: Sequence[WorkItem]) -> None:
        self.session.add_all(items)
        self.session.flush()

    def count(self, plan_id: str, phase_key: str, step_index: int | None = None) -> int:
        statement = (
            select(func.count())
            .select_from(WorkItem)
            .where(WorkItem.plan_id == plan_id, WorkItem.phase_key == phase_key)
        )
        if step_index is not None:
            statement = statement.where(WorkItem.step_index == step_index)
        return int(self.session.exec(statement).one())

    def list_items(
        self,
        plan_id: str,
        *,
        phase_key: str | None = None,
        step_index: int | None = None,
        states: Sequence[str] | None = None,
        role_definition_id: str | None = None,
        limit: int | None = None,
    ) -> Sequence[WorkItem]:
        statement = select(WorkItem).where(WorkItem.plan_id == plan_id)
        if role_definition_id is not None:
            statement = statement.where(WorkItem.role_definition_id == role_definition_id)
        if phase_key is not None:
            statement = statement.where(WorkItem.phase_key == phase_key)
        if step_index is not None:
            statement = statement.where(WorkItem.step_index == step_index)
        if states:
            statement = statement.where(col(WorkItem.state).in_(states))
        statement = statement.order_by(col(WorkItem.position))
        if limit is not None:
            statement = statement.limit(limit)
        return self.session.exec(statement).all()

    def get(self, item_id: int) -> WorkItem | None:
        return self.session.get(WorkItem, item_id)

    def reset_failed(self, plan_id: str, phase_key: str) -> int:
        statement = (
            update(WorkItem)
            .where(
                col(WorkItem.plan_id) == plan_id,
                col(WorkItem.phase_key) == phase_key,
                col(WorkItem.state) == "failed",
            )
            .values(state="pending", attempts=0)
        )
        return int(self.session.execute(statement).rowcount)  # type: ignore[attr-defined]
