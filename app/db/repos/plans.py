from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from app.db.models import Phase, Plan, Transition, WorkItem


class PlanRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, plan: Plan, phases: Iterable[Phase]) -> Plan:
        self.session.add(plan)
        self.session.flush()
        for phase in phases:
            self.session.add(phase)
        self.session.flush()
        return plan

    def get(self, plan_id: str) -> Plan | None:
        return self.session.get(Plan, plan_id)

    def get_for_update(self, plan_id: str) -> Plan | None:
        statement = select(Plan).where(Plan.id == plan_id).with_for_update()
        return self.session.exec(statement).first()

    def list_plans(
        self, *, tenant_id: str | None = None, states: Sequence[str] | None = None
    ) -> Sequence[Plan]:
        statement = select(Plan).order_by(col(Plan.created_at).desc())
        if tenant_id is not None:
            statement = statement.where(Plan.tenant_id == tenant_id)
        if states:
            statement = statement.where(col(Plan.state).in_(states))
        return self.session.exec(statement).all()

    def phases(self, plan_id: str) -> list[Phase]:
        statement = select(Phase).where(Phase.plan_id == plan_id).order_by(col(Phase.position))
        return list(self.session.exec(statement).all())

    def phases_for(self, plan_ids: Sequence[str]) -> dict[str, list[Phase]]:
        grouped: dict[str, list[Phase]] = {plan_id: [] for plan_id in plan_ids}
        if not plan_ids:
            return grouped
        statement = (
            select(Phase).where(col(Phase.plan_id).in_(plan_ids)).order_by(col(Phase.position))
        )
        for phase in self.session.exec(statement).all():
            grouped[phase.plan_id].append(phase)
        return grouped

    def compare_and_set_version(
        self,
        plan_id: str,
        *,
        expected: int,
        new_version: int,
        state: str,
        at: datetime,
        **fields: object,
    ) -> bool:
        """Move the plan to ``new_version`` only while it is at ``expected``; False if stale."""
        statement = (
            update(Plan)
            .where(col(Plan.id) == plan_id, col(Plan.version) == expected)
            .values(version=new_version, state=state, updated_at=at, **fields)
        )
        result = self.session.execute(statement)
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def add_transition(self, transition: Transition) -> None:
        self.session.add(transition)

    def history(self, plan_id: str) -> Sequence[Transition]:
        statement = (
            select(Transition)
            .where(Transition.plan_id == plan_id)
            # A note (a refused preflight) keeps the plan's version: the id orders those.
            .order_by(col(Transition.version), col(Transition.id))
        )
        return self.session.exec(statement).all()

    def progress(self, plan_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, int]]:
        """Work-item counts by state for each (plan, phase)."""
        if not plan_ids:
            return {}
        statement = (
            select(WorkItem.plan_id, WorkItem.phase_key, WorkItem.state, func.count())
            .where(col(WorkItem.plan_id).in_(plan_ids))
            .group_by(col(WorkItem.plan_id), col(WorkItem.phase_key), col(WorkItem.state))
        )
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for plan_id, phase_key, state, count in self.session.exec(statement).all():
            counts.setdefault((plan_id, phase_key), {})[state] = int(count)
        return counts
