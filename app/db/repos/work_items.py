from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import func, insert, update
from sqlmodel import Session, SQLModel, col, select

from app.db.models import WorkItem

_TABLE = SQLModel.metadata.tables[WorkItem.__tablename__]


@dataclass
class OpenItem:
    """A work item still to do, as plain data: a step reads thousands of them at a time, and
    ORM objects cost ten times as much to load. Progress is written back by id."""

    id: int
    position: int
    principal_id: str
    principal_type: str
    principal_name: str | None
    principal_upn: str | None
    role_definition_id: str
    directory_scope_id: str
    state: str
    attempts: int


_OPEN_COLUMNS = [_TABLE.c[f.name] for f in fields(OpenItem)]


class WorkItemRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert in one executemany: a step of 20,000 items is rows, not tracked objects.
        Each row maps the columns of :class:`WorkItem` (``attempts`` and ``not_before`` may be
        left out)."""
        if rows:
            self.session.execute(
                insert(_TABLE), [{"attempts": 0, "not_before": None, **row} for row in rows]
            )

    def open_items(
        self, plan_id: str, *, phase_key: str, step_index: int, states: Sequence[str]
    ) -> list[OpenItem]:
        """The step's items in ``states``, in position order."""
        statement = (
            select(*_OPEN_COLUMNS)
            .where(
                _TABLE.c.plan_id == plan_id,
                _TABLE.c.phase_key == phase_key,
                _TABLE.c.step_index == step_index,
                _TABLE.c.state.in_(states),
            )
            .order_by(_TABLE.c.position)
        )
        return [OpenItem(*row) for row in self.session.execute(statement)]

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
