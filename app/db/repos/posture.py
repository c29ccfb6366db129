from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlmodel import Session, col, select

from app.db.models import Plan, PostureReport


class PostureRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, report: PostureReport) -> PostureReport:
        self.session.add(report)
        self.session.flush()
        return report

    def latest(self, tenant_id: str, *, scope: str = "cisa") -> PostureReport | None:
        statement = (
            select(PostureReport)
            .where(PostureReport.tenant_id == tenant_id, PostureReport.scope == scope)
            .order_by(col(PostureReport.id).desc())
            .limit(1)
        )
        return self.session.exec(statement).first()

    def list_for_plan(self, plan_id: str, *, scope: str = "plan") -> Sequence[PostureReport]:
        """The plan's reports, oldest first."""
        statement = (
            select(PostureReport)
            .where(PostureReport.plan_id == plan_id, PostureReport.scope == scope)
            .order_by(col(PostureReport.id))
        )
        return self.session.exec(statement).all()

    def current_plan(self, tenant_id: str, states: Iterable[str]) -> Plan | None:
        """The tenant's most recently created plan in one of ``states``."""
        statement = (
            select(Plan)
            .where(Plan.tenant_id == tenant_id, col(Plan.state).in_(list(states)))
            .order_by(col(Plan.created_at).desc())
            .limit(1)
        )
        return self.session.exec(statement).first()
