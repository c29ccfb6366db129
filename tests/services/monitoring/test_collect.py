"""Collection is incremental: each run stores only what is new or changed since the last."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import col, select

from app.db.models import (
    MonitoringCursor,
    PimAuditRecord,
    PimRequestRecord,
    StandingAssignmentRecord,
)
from app.domain.roles import APPLICATION_ADMINISTRATOR, USER_ADMINISTRATOR
from app.services.monitoring.collect import CollectionError
from app.services.monitoring.reports import collection_status
from tests.monitoring_rig import MonitoringRig, cast_of, day


def _requests(rig: MonitoringRig) -> list[PimRequestRecord]:
    with rig.session_factory() as session:
        return list(session.exec(select(PimRequestRecord)).all())


async def _graph_requests(rig: MonitoringRig) -> Counter[str]:
    stats = await rig.sim("GET", "/_sim/requests")
    return Counter(
        {f"{r['method']} /{r['route']}": r["count"] for r in stats["by_route"] if r["count"]}
    )


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

    async def test_nothing_changed_reads_only_the_audit_log(self, rig: MonitoringRig) -> None:
        rig.at(day(1))
        first = await rig.collect()
        assert not first.incremental
        assert first.assignments_new > 10
        before = await _graph_requests(rig)
        rig.at(day(1, 9, 5))
        again = await rig.collect()
        assert again.incremental
        assert (again.requests_new, again.assignments_new, again.assignments_gone) == (0, 0, 0)
        assert await _graph_requests(rig) - before == {"GET /auditLogs/directoryAudits": 1}

    async def test_changes_are_read_for_the_principals_the_audit_log_names(
        self, rig: MonitoringRig
    ) -> None:
        cast = cast_of(rig)
        rig.at(day(1))
        await rig.collect()
        state = await rig.sim("GET", "/_sim/state")
        holder = next(
            a
            for a in state["active_assignments"]
            if a["principal_type"] == "user"
            and a["principal_id"] not in rig.sim_state.profile.break_glass_ids
            and a["role_definition_id"] == USER_ADMINISTRATOR
        )
        rig.at(day(1, 10))
        await rig.assign_outside_pim(cast.helpdesk, USER_ADMINISTRATOR)
        await rig.remove_active(holder["principal_id"], USER_ADMINISTRATOR)
        await rig.activate(cast.app_admin, APPLICATION_ADMINISTRATOR, hours=1, justification="x")
        before = await _graph_requests(rig)
        rig.at(day(1, 10, 5))
        result = await rig.collect()
        assert result.incremental
        assert (result.assignments_new, result.assignments_gone) == (1, 1)
        assert result.requests_new == 1
        read = await _graph_requests(rig) - before
        instances = "GET /roleManagement/directory/roleAssignmentScheduleInstances"
        assert read[instances] == 3  # one principal each, filtered by principalId
        with rig.session_factory() as session:
            gone = session.exec(
                select(StandingAssignmentRecord).where(
                    col(StandingAssignmentRecord.gone_at).is_not(None)
                )
            ).all()
        assert [(g.principal_id, g.role_definition_id) for g in gone] == [
            (holder["principal_id"], USER_ADMINISTRATOR)
        ]

    async def test_everything_is_read_again_after_full_read_seconds(
        self, rig: MonitoringRig
    ) -> None:
        rig.at(day(1))
        await rig.collect()
        rig.at(day(1) + timedelta(seconds=rig.settings.full_read_seconds))
        assert not (await rig.collect()).incremental

    async def test_after_a_failed_run_everything_is_read_again(self, rig: MonitoringRig) -> None:
        cast = cast_of(rig)
        rig.at(day(1))
        await rig.collect()
        rig.at(day(1, 9, 30))
        await rig.activate(cast.app_admin, APPLICATION_ADMINISTRATOR, hours=1, justification="x")
        granted = await rig.sim("GET", "/_sim/permissions")
        audit_only = ["AuditLog.Read.All", "Directory.Read.All"]
        await rig.sim("PUT", "/_sim/permissions", json={"granted": audit_only})
        rig.at(day(1, 10))
        with pytest.raises(CollectionError, match="requests: "):
            await rig.collect()
        await rig.sim("PUT", "/_sim/permissions", json=granted)
        rig.at(day(1, 11))
        assert not (await rig.collect()).incremental
        rig.at(day(1, 12))
        assert (await rig.collect()).incremental

    async def test_graph_failure_is_recorded_on_the_cursor(self, rig: MonitoringRig) -> None:
        await rig.sim("PUT", "/_sim/permissions", json={"granted": []})
        rig.at(day(1))
        with pytest.raises(CollectionError, match="audits: "):
            await rig.collect()
        cursors = _cursors(rig)
        assert cursors["audits"].last_error is not None
        assert cursors["audits"].last_error.startswith("audits: ")
        assert cursors["audits"].last_success_at is None
        with rig.session_factory() as session:
            status = collection_status(
                session, rig.tenant_id, now=rig.clock.now(), max_age=timedelta(minutes=10)
            )
        assert status.stale
        assert status.last_success_at is None
