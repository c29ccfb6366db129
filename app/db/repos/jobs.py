from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from app.db.models import Job


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, job: Job) -> Job:
        self.session.add(job)
        self.session.flush()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.session.get(Job, job_id)

    def running(self, *, kind: str, plan_id: str | None, tenant_id: str) -> Sequence[Job]:
        statement = select(Job).where(
            Job.kind == kind, Job.tenant_id == tenant_id, Job.state == "running"
        )
        if plan_id is not None:
            statement = statement.where(Job.plan_id == plan_id)
        return self.session.exec(statement.order_by(col(Job.created_at))).all()

    def list_for(
        self, *, plan_id: str | None = None, tenant_id: str | None = None, limit: int = 20
    ) -> Sequence[Job]:
        statement = select(Job)
        if plan_id is not None:
            statement = statement.where(Job.plan_id == plan_id)
        if tenant_id is not None:
            statement = statement.where(Job.tenant_id == tenant_id)
        return self.session.exec(statement.order_by(col(Job.created_at).desc()).limit(limit)).all()

    def lapsed(self, *, heartbeat_before: datetime) -> Sequence[Job]:
        statement = select(Job).where(
            Job.state == "running", col(Job.heartbeat_at) < heartbeat_before
        )
        return self.session.exec(statement).all()
