"""Known activity in the simulated tenant → every signal's numbers, exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.roles import (
    APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    USER_ADMINISTRATOR,
)
from app.domain.signals import DurationReading, SignalSet
from app.problems import InvalidInputError, NotFoundError
from app.services.monitoring.reports import activation_report, drift_report, parse_period
from tests.monitoring_rig import (
    HELPDESK_ADMINISTRATOR,
    REPORTS_READER,
    MonitoringRig,
    day,
    two_weeks_of_activity,
)

HOUR = timedelta(hours=1)
WEEKS = [datetime(2025, 1, d, tzinfo=UTC) for d in (13, 20, 27)]


def buckets_and_max(signals: SignalSet) -> tuple[tuple[int, ...], int, float | None]:
    d = signals.duration
    return d.buckets, d.at_max, d.share_at_max


class TestActivationReport:
    @pytest.fixture
    async def report_rig(self, rig: MonitoringRig) -> MonitoringRig:
        rig.cast = await two_weeks_of_activity(rig)  # type: ignore[attr-defined]
        rig.at(day(21, 12))  # Monday Jan 27, 12:00
        await rig.collect()
        return rig

    def _report(self, rig: MonitoringRig, **over: str):  # type: ignore[no-untyped-def]
        with rig.session_factory() as session:
            return activation_report(
                session,
                tenant_id=rig.tenant_id,
                now=rig.clock.now(),
                settings=rig.settings,
                period=over.get("period", "P14D"),
                role=over.get("role"),
            )

    def test_totals(self, report_rig: MonitoringRig) -> None:
        report = self._report(report_rig)
        assert report.signals.since == WEEKS[0]
        totals = report.signals.totals
        assert (totals.activations, totals.granted) == (9, 4)
        assert buckets_and_max(totals) == ((2, 2, 1, 0, 4), 4, 0.4444)
        d = totals.duration
        assert (d.measured, d.median_requested, d.median_actual) == (9, 3 * HOUR, 3 * HOUR)
        assert (d.ended_early, d.at_max_renewed, d.at_max_ended_early) == (1, 1, 0)
        assert d.reading is DurationReading.healthy
        assert (totals.tickets.without_ticket, totals.tickets.share_without_ticket) == (7, 0.7778)
        j = totals.justifications
        assert (j.smelly, j.missing, j.too_short, j.stock_phrase) == (5, 0, 1, 4)
        a = totals.approvals
        assert (a.required, a.approved, a.denied, a.failed, a.expired) == (6, 1, 5, 0, 0)
        assert (a.canceled, a.pending, a.failed_approvals) == (0, 0, 5)

    def test_per_role(self, report_rig: MonitoringRig) -> None:
        roles = {r.role_definition_id: r for r in self._report(report_rig).signals.roles}
        assert [r.role_name for r in roles.values()] == [
            "Application Administrator",
            "Helpdesk Administrator",
            "User Administrator",
        ]
        app_admin = roles[APPLICATION_ADMINISTRATOR]
        assert app_admin.max_duration == 4 * HOUR
        assert app_admin.totals.activations == 2
        assert buckets_and_max(app_admin.totals) == ((0, 1, 0, 0, 1), 1, 0.5)
        assert app_admin.totals.duration.at_max_renewed == 1
        assert app_admin.totals.duration.reading is DurationReading.not_enough_data
        helpdesk = roles[HELPDESK_ADMINISTRATOR].totals
        assert buckets_and_max(helpdesk) == ((1, 0, 0, 0, 0), 0, 0.0)
        assert helpdesk.duration.median_actual == timedelta(minutes=20)
        assert (helpdesk.duration.ended_early, helpdesk.justifications.too_short) == (1, 1)
        user_admin = roles[USER_ADMINISTRATOR].totals
        assert user_admin.activations == 6
        assert buckets_and_max(user_admin) == ((1, 1, 1, 0, 3), 3, 0.5)
        assert user_admin.duration.median_requested == timedelta(hours=3, minutes=30)
        assert user_admin.duration.median_actual == 4 * HOUR
        assert user_admin.duration.reading is DurationReading.being_gamed
        assert user_admin.duration.reading_text.startswith(
            "Being gamed: 50% of activations ask for the full 4h, but only 0 of those 3"
        )
        assert (user_admin.tickets.without_ticket, user_admin.justifications.stock_phrase) == (
            5,
            3,
        )
        assert (user_admin.approvals.approved, user_admin.approvals.failed_approvals) == (1, 5)

    def test_weeks_and_the_spike(self, report_rig: MonitoringRig) -> None:
        signals = self._report(report_rig).signals
        assert [w.week_start for w in signals.weeks] == WEEKS
        assert [w.signals.activations for w in signals.weeks] == [5, 4, 0]
        assert [w.signals.approvals.failed_approvals for w in signals.weeks] == [1, 4, 0]
        # The history starts 30 days before the first collection (Dec 28): three known weeks
        # before Jan 13, four before Jan 20 and Jan 27.
        assert [w.failed_approvals_baseline for w in signals.weeks] == [0.0, 0.25, 1.25]
        assert [w.failed_approvals_spike for w in signals.weeks] == [False, True, False]
        assert signals.spikes == 1
        user_admin = next(r for r in signals.roles if r.role_definition_id == USER_ADMINISTRATOR)
        assert [w.failed_approvals_spike for w in user_admin.weeks] == [False, True, False]

    def test_coaching_by_principal(self, report_rig: MonitoringRig) -> None:
        cast = report_rig.cast  # type: ignore[attr-defined]
        coaching = self._report(report_rig).signals.coaching
        assert coaching[0].principal_id == cast.user_admin
        assert coaching[0].principal_name == report_rig.upn(cast.user_admin)
        assert (coaching[0].activations, coaching[0].smelly_justifications) == (6, 3)
        assert coaching[0].without_ticket == 5
        assert coaching[0].examples == ("admin work", "needed", "doing my job!")
        rest = {(c.principal_id, c.smelly_justifications, c.examples) for c in coaching[1:]}
        assert rest == {
            (cast.app_admin, 1, ("doing my job",)),
            (cast.helpdesk, 1, ("oops",)),
        }

    def test_role_filter_by_name_or_id(self, report_rig: MonitoringRig) -> None:
        by_name = self._report(report_rig, role="user administrator")
        by_id = self._report(report_rig, role=USER_ADMINISTRATOR.upper())
        assert by_name.role == by_id.role == USER_ADMINISTRATOR
        assert by_name.signals.totals.activations == 6
        assert [r.role_definition_id for r in by_id.signals.roles] == [USER_ADMINISTRATOR]

    def test_a_shorter_period_is_whole_weeks(self, report_rig: MonitoringRig) -> None:
        report = self._report(report_rig, period="P7D")
        assert report.signals.since == WEEKS[1]
        assert report.signals.totals.activations == 4
        assert report.period == "P7D"

    def test_bad_filters_name_the_parameter(self, report_rig: MonitoringRig) -> None:
        with pytest.raises(InvalidInputError) as period:
            self._report(report_rig, period="two weeks")
        assert period.value.extra["errors"][0]["path"] == "query.period"
        with pytest.raises(InvalidInputError) as role:
            self._report(report_rig, role="Chief Coffee Officer")
        assert role.value.extra["errors"][0]["path"] == "query.role"

    def test_unknown_tenant(self, report_rig: MonitoringRig) -> None:
        with report_rig.session_factory() as session, pytest.raises(NotFoundError):
            activation_report(
                session,
                tenant_id="no-such-tenant",
                now=report_rig.clock.now(),
                settings=report_rig.settings,
            )


@pytest.mark.parametrize(
    ("text", "days"), [("P7D", 7), ("p4w", 28), ("P1W3D", 10), ("P366D", 366), (" P1D ", 1)]
)
def test_parse_period(text: str, days: int) -> None:
    assert parse_period(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "P", "7d", "P0D", "P367D", "PT12H", "P1M", "P1Y", "-P7D"])
def test_parse_period_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError, match="period"):
        parse_period(text)


class TestDriftReport:
    async def test_assignments_outside_pim_after_the_conversion(self, rig: MonitoringRig) -> None:
        state = rig.sim_state
        app_admin = rig.eligible_user(APPLICATION_ADMINISTRATOR)
        helpdesk_user = state.profile.bindings["helpdesk"]["ids"][0]
        holding = {a.principal_id for a in state.actives} | {
            e.principal_id for e in state.eligibles
        }
        newcomer = next(
            u.id
            for u in sorted(state.users.values(), key=lambda u: u.id)
            if u.id not in holding and u.user_type == "Member"
        )
        rig.at(day(3))
        await rig.assign_outside_pim(app_admin, APPLICATION_ADMINISTRATOR, actor_id=helpdesk_user)
        rig.at(day(4))
        await rig.assign_outside_pim(newcomer, HELPDESK_ADMINISTRATOR)
        await rig.assign_outside_pim(newcomer, REPORTS_READER)  # not a target role
        rig.at(day(5))
        await rig.collect()
        with rig.session_factory() as session:
            report = drift_report(
                session, tenant_id=rig.tenant_id, now=rig.clock.now(), settings=rig.settings
            )
        found = [
            (f.kind.value, f.source.value, f.principal_id, f.role_definition_id)
            for f in report.findings
        ]
        assert sorted(found) == sorted(
            [
                (
                    "reassigned_after_conversion",
                    "outside_pim",
                    app_admin,
                    APPLICATION_ADMINISTRATOR,
                ),
                ("new_standing_assignment", "outside_pim", newcomer, HELPDESK_ADMINISTRATOR),
            ]
        )
        reassigned = next(f for f in report.findings if f.principal_id == app_admin)
        assert reassigned.seen_at == day(5)
        assert reassigned.assigned_at == day(3)
        assert reassigned.assigned_by == rig.upn(helpdesk_user)
        assert reassigned.converted_at == day(0)
        assert reassigned.principal_name == rig.upn(app_admin)
        assert reassigned.plan_id == rig.plan_id

        # Someone removes it again: the finding goes away with the assignment.
        await rig.remove_active(app_admin, APPLICATION_ADMINISTRATOR)
        rig.at(day(6))
        result = await rig.collect()
        assert result.assignments_gone == 1
        with rig.session_factory() as session:
            report = drift_report(
                session, tenant_id=rig.tenant_id, now=rig.clock.now(), settings=rig.settings
            )
        assert [f.principal_id for f in report.findings] == [newcomer]

    async def test_standing_global_administrators(self, rig: MonitoringRig) -> None:
        await rig.collect()
        state = rig.sim_state
        break_glass = set(state.profile.break_glass_ids)
        holders = {
            a.principal_id
            for a in state.actives
            if a.role_definition_id == GLOBAL_ADMINISTRATOR
            and a.assignment_type == "Assigned"
            and a.end is None
            and a.principal_id in state.users
        }
        with rig.session_factory() as session:
            report = drift_report(
                session, tenant_id=rig.tenant_id, now=rig.clock.now(), settings=rig.settings
            )
        admins = report.global_administrators
        assert admins.standing == len(holders)
        assert (admins.break_glass_configured, admins.break_glass_holding) == (2, 2)
        assert {a.principal_id for a in admins.others} == holders - break_glass
        assert len(admins.others) == len(holders) - 2 > 0
        assert admins.reading.startswith(f"{len(holders) - 2} standing Global Administrator(s)")
        assert report.findings == ()
