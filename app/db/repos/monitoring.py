"""Collected PIM activity: cursors, requests, audit records, standing assignments.

Repositories never commit; the monitoring service owns the unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from app.db.models import (
    MonitoringCursor,
    PimAuditRecord,
    PimRequestRecord,
    StandingAssignmentRecord,
)

_CHUNK = 500
"""Ids per ``IN (...)``: well under SQLite's and PostgreSQL's parameter limits."""


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class MonitoringRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- cursors -----------------------------------------------------------------------------

    def get_cursor(self, tenant_id: str, source: str) -> MonitoringCursor | None:
        return self.session.get(MonitoringCursor, (tenant_id, source))

    def cursor_for_update(self, tenant_id: str, source: str) -> MonitoringCursor:
        """The cursor row, created (unsaved until flush) on the first run."""
        cursor = self.get_cursor(tenant_id, source)
        if cursor is None:
            cursor = MonitoringCursor(tenant_id=tenant_id, source=source)
            self.session.add(cursor)
        return cursor

    def list_cursors(self, tenant_id: str) -> Sequence[MonitoringCursor]:
        statement = select(MonitoringCursor).where(MonitoringCursor.tenant_id == tenant_id)
        return self.session.exec(statement).all()

    # -- requests ----------------------------------------------------------------------------

    def requests_by_id(
        self, tenant_id: str, request_ids: Sequence[str]
    ) -> dict[str, PimRequestRecord]:
        found: dict[str, PimRequestRecord] = {}
        for chunk in _chunks(list(dict.fromkeys(request_ids))):
            statement = select(PimRequestRecord).where(
                PimRequestRecord.tenant_id == tenant_id,
                col(PimRequestRecord.request_id).in_(chunk),
            )
            found.update({row.request_id: row for row in self.session.exec(statement).all()})
        return found

    def add(self, row: PimRequestRecord | PimAuditRecord | StandingAssignmentRecord) -> None:
        self.session.add(row)

    def known_principal_names(self, tenant_id: str, principal_ids: Sequence[str]) -> dict[str, str]:
        """Names already stored for these principals (so they are resolved only once)."""
        names: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(principal_ids))):
            statement = select(
                PimRequestRecord.principal_id, PimRequestRecord.principal_name
            ).where(
                PimRequestRecord.tenant_id == tenant_id,
                col(PimRequestRecord.principal_id).in_(chunk),
                col(PimRequestRecord.principal_name).is_not(None),
            )
            for principal_id, name in self.session.exec(statement).all():
                if name:
                    names[principal_id] = name
        return names

    def list_requests(
        self,
        tenant_id: str,
        *,
        since: datetime,
        until: datetime,
        actions: Sequence[str] | None = None,
        role_ids: Sequence[str] | None = None,
    ) -> Sequence[PimRequestRecord]:
        statement = select(PimRequestRecord).where(
            PimRequestRecord.tenant_id == tenant_id,
            col(PimRequestRecord.requested_at) >= since,
            col(PimRequestRecord.requested_at) < until,
        )
        if actions:
            statement = statement.where(col(PimRequestRecord.action).in_(actions))
        if role_ids is not None:
            statement = statement.where(col(PimRequestRecord.role_definition_id).in_(role_ids))
        return self.session.exec(statement.order_by(col(PimRequestRecord.requested_at))).all()

    # -- audit records -----------------------------------------------------------------------

    def existing_audit_ids(self, tenant_id: str, audit_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(audit_ids))):
            statement = select(PimAuditRecord.audit_id).where(
                PimAuditRecord.tenant_id == tenant_id, col(PimAuditRecord.audit_id).in_(chunk)
            )
            found.update(self.session.exec(statement).all())
        return found

    def list_audits(
        self,
        tenant_id: str,
        *,
        activities: Sequence[str],
        since: datetime | None = None,
    ) -> Sequence[PimAuditRecord]:
        statement = select(PimAuditRecord).where(
            PimAuditRecord.tenant_id == tenant_id, col(PimAuditRecord.activity).in_(activities)
        )
        if since is not None:
            statement = statement.where(col(PimAuditRecord.activity_at) >= since)
        return self.session.exec(statement.order_by(col(PimAuditRecord.activity_at))).all()

    # -- standing assignments ----------------------------------------------------------------

    def standing_by_assignment(
        self, tenant_id: str, *, principal_ids: Sequence[str] | None = None
    ) -> dict[str, StandingAssignmentRecord]:
        """Every standing assignment ever seen for the tenant (present and gone), by id; only
        those of ``principal_ids`` when given."""
        statement = select(StandingAssignmentRecord).where(
            StandingAssignmentRecord.tenant_id == tenant_id
        )
        if principal_ids is None:
            return {row.assignment_id: row for row in self.session.exec(statement).all()}
        found: dict[str, StandingAssignmentRecord] = {}
        for chunk in _chunks(sorted(set(principal_ids))):
            rows = self.session.exec(
                statement.where(col(StandingAssignmentRecord.principal_id).in_(chunk))
            ).all()
            found.update((row.assignment_id, row) for row in rows)
        return found

    def standing_present(
        self, tenant_id: str, *, role_ids: Sequence[str] | None = None
    ) -> Sequence[StandingAssignmentRecord]:
        statement = select(StandingAssignmentRecord).where(
            StandingAssignmentRecord.tenant_id == tenant_id,
            col(StandingAssignmentRecord.gone_at).is_(None),
        )
        if role_ids is not None:
            statement = statement.where(
                col(StandingAssignmentRecord.role_definition_id).in_(role_ids)
            )
        return self.session.exec(
            statement.order_by(col(StandingAssignmentRecord.first_seen_at))
        ).all()
