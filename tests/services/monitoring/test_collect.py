"""Collection is incremental: each run stores only what is new or changed since the last."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from app.db.models import MonitoringCursor, PimAuditRecord, PimRequestRecord
from app.domain.roles import APPLICATION_ADMINISTRATOR, USER_ADMINISTRATOR
from app.services.monitoring.collect import CollectionError
from app.services.monitoring.reports import collection_status
from tests.monitoring_rig import MonitoringRig, cast_of, day


def _requests(rig: MonitoringRig) -> list[PimRequestRecord]:
    with rig.session_factory() as session:
        return list(session.exec(select(PimRequestRecord)).all())


def _cursors(rig: MonitoringRig) -> dict[str, MonitoringCursor]:
    with rig.session_factory() as session:
        return {c.source: c for c in session.exec(select(MonitoringCursor)).all()}


class TestIncrementalCollection:
    async def test_second_run_stores_only_what_changed(self, rig: MonitoringRig) -> None:
        cast = cast_of(rig)
        rig.at(day(7, 10))
        await rig.activate(
            cast.app_admin, APPLICATION_ADMINISTRATOR, hours=2, justification="Patching SSO app"
        )
        rig.at(day(7, 11))
        await rig.deactivate(cast.app_admin, APPLICATION_ADMINISTRATOR)
        rig.at(day(8))
        pending = await rig.activate(
            cast.user_admin, USER_ADMINISTRATOR, hours=4, justification="Resetting MFA for CFO"
        )
        first = await rig.collect()
        assert (first.requests_new, first.requests_updated) == (3, 0)
        assert first.audits_new > 0
        rows = {r.request_id: r for r in _requests(rig)}
        row = rows[pending["id"]]
        assert (row.status, row.approval_required, row.max_duration_seconds) == (
            "PendingApproval",
            True,
            4 * 3600,
        )
        assert row.principal_name == rig.upn(cast.user_admin)
        assert sorted(r.action for r in rows.values()) == [
            "selfActivate",
            "selfActivate",
            "selfDeactivate",
        ]

        again = await rig.collect()
        assert (again.requests_new, again.requests_updated, again.audits_new) == (0, 0, 0)
        assert (again.assignments_new, again.assignments_gone) == (0, 0)

        rig.at(day(8, 9, 45))
        await rig.decide(pending["id"], approve=True, approver_id=cast.approver)
        rig.at(day(8, 10))
        third = await rig.collect()
        assert (third.requests_new, third.requests_updated) == (0, 1)
        assert third.audits_new == 2  # approved, completed (PIM activation)
        row = {r.request_id: r for r in _requests(rig)}[pending["id"]]
        assert row.status == "Provisioned"
        assert (row.start_at, row.end_at) == (day(8, 9, 45), day(8, 13, 45))
        assert len(_requests(rig)) == 3

    async def test_cursors_move_forward(self, rig: MonitoringRig) -> None:
        cast = cast_of(rig)
        rig.at(day(2))
        await rig.activate(cast.app_admin, APPLICATION_ADMINISTRATOR, hours=1, justification="x")
        rig.at(day(3))
        await rig.collect()
        cursors = _cursors(rig)
        assert cursors["requests"].position == day(2)
        assert cursors["requests"].covers_from == day(3) - timedelta(days=30)
        assert cursors["audits"].position == day(2, 10)  # newest record: the activation expired
        assert cursors["assignments"].position == day(3)
        assert {c.last_success_at for c in cursors.values()} == {day(3)}
        with rig.session_factory() as session:
            audits = session.exec(select(PimAuditRecord)).all()
        assert len({a.audit_id for a in audits}) == len(audits)

    async def test_late_audit_records_inside_the_overlap_are_not_duplicated(
        self, rig: MonitoringRig
    ) -> None:
        await rig.collect()
        with rig.session_factory() as session:
            before = len(session.exec(select(PimAuditRecord)).all())
        rig.at(day(0, 9, 1))  # within the 5-minute overlap of the last audit record
        result = await rig.collect()
        assert result.audits_new == 0
        with rig.session_factory() as session:
            assert len(session.exec(select(PimAuditRecord)).all()) == before

    async def test_graph_failure_is_recorded_on_the_cursor(self, rig: MonitoringRig) -> None:
        await rig.sim("PUT", "/_sim/permissions", json={"granted": []})
        rig.at(day(1))
        with pytest.raises(CollectionError, match="requests: "):
            await rig.collect()
        cursors = _cursors(rig)
        assert cursors["requests"].last_error is not None
        assert cursors["requests"].last_error.startswith("requests: ")
        assert cursors["requests"].last_success_at is None
        with rig.session_factory() as session:
            status = collection_status(
                session, rig.tenant_id, now=rig.clock.now(), max_age=timedelta(minutes=10)
            )
        assert status.stale
        assert status.last_success_at is None
