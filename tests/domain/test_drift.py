"""Drift classification and the standing Global Administrator count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.drift import (
    AssignmentAudit,
    AssignmentSource,
    Conversion,
    DriftKind,
    PlanScope,
    StandingAssignment,
    classify_drift,
    count_global_admins,
)
from app.domain.roles import GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
CONVERTED = START + timedelta(hours=1)
READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"
BREAK_GLASS = frozenset({"bg1", "bg2"})


def standing(principal: str, role: str = USER_ADMINISTRATOR, **over: Any) -> StandingAssignment:
    values: dict[str, Any] = {
        "assignment_id": f"{principal}-{role}",
        "principal_id": principal,
        "role_definition_id": role,
        "first_seen_at": START + timedelta(days=2),
    }
    values.update(over)
    return StandingAssignment(**values)


def scope(**over: Any) -> PlanScope:
    values: dict[str, Any] = {
        "plan_id": "plan-1",
        "plan_name": "rollout",
        "started_at": START,
        "target_roles": frozenset({USER_ADMINISTRATOR, GLOBAL_ADMINISTRATOR}),
        "conversions": (Conversion("alice", USER_ADMINISTRATOR, CONVERTED),),
        "baseline": frozenset(
            {("alice", USER_ADMINISTRATOR, "/"), ("carol", USER_ADMINISTRATOR, "/")}
        ),
    }
    values.update(over)
    return PlanScope(**values)


class TestClassifyDrift:
    def test_converted_principal_assigned_again(self) -> None:
        audit = AssignmentAudit("alice", USER_ADMINISTRATOR, START + timedelta(days=1), "eve@x")
        (finding,) = classify_drift(
            [standing("alice")], [scope()], break_glass=BREAK_GLASS, audits=[audit]
        )
        assert finding.kind is DriftKind.reassigned_after_conversion
        assert finding.source is AssignmentSource.outside_pim
        assert (finding.assigned_at, finding.assigned_by) == (audit.at, "eve@x")
        assert finding.converted_at == CONVERTED
        assert finding.seen_at == START + timedelta(days=2)

    def test_a_record_last_seen_before_the_conversion_is_stale_not_drift(self) -> None:
        stale = standing(
            "alice",
            first_seen_at=START - timedelta(days=1),
            last_seen_at=CONVERTED - timedelta(minutes=1),
        )
        assert classify_drift([stale], [scope()], break_glass=BREAK_GLASS) == []
        seen_again = standing(
            "alice", first_seen_at=START - timedelta(days=1), last_seen_at=CONVERTED
        )
        (finding,) = classify_drift([seen_again], [scope()], break_glass=BREAK_GLASS)
        assert finding.seen_at == START - timedelta(days=1)

    def test_audit_before_the_conversion_is_not_the_cause(self) -> None:
        old = AssignmentAudit("alice", USER_ADMINISTRATOR, START - timedelta(days=30), "old@x")
        (finding,) = classify_drift(
            [standing("alice")], [scope()], break_glass=BREAK_GLASS, audits=[old]
        )
        assert (finding.assigned_at, finding.assigned_by) == (None, None)

    def test_new_holder_outside_the_baseline(self) -> None:
        (finding,) = classify_drift(
            [standing("bob", created_outside_pim=False)], [scope()], break_glass=BREAK_GLASS
        )
        assert finding.kind is DriftKind.new_standing_assignment
        assert finding.source is AssignmentSource.pim
        assert finding.converted_at is None

    def test_baseline_holders_not_converted_yet_are_not_drift(self) -> None:
        assert classify_drift([standing("carol")], [scope()], break_glass=BREAK_GLASS) == []

    def test_break_glass_and_other_roles_are_never_drift(self) -> None:
        found = classify_drift(
            [standing("bg1", GLOBAL_ADMINISTRATOR), standing("bob", READER)],
            [scope()],
            break_glass=BREAK_GLASS,
        )
        assert found == []

    def test_without_a_baseline_only_what_appeared_after_the_start(self) -> None:
        plan = scope(baseline=None)
        before = standing("carol", first_seen_at=START - timedelta(days=1))
        after = standing("bob", first_seen_at=START + timedelta(days=1))
        found = classify_drift([before, after], [plan], break_glass=BREAK_GLASS)
        assert [(f.principal_id, f.kind) for f in found] == [
            ("bob", DriftKind.new_standing_assignment)
        ]

    def test_one_finding_per_plan_oldest_first(self) -> None:
        other = scope(plan_id="plan-2", plan_name="second", conversions=())
        found = classify_drift(
            [standing("bob"), standing("dave", first_seen_at=START + timedelta(days=1))],
            [scope(), other],
            break_glass=BREAK_GLASS,
        )
        assert [(f.principal_id, f.plan_id) for f in found] == [
            ("dave", "plan-1"),
            ("dave", "plan-2"),
            ("bob", "plan-1"),
            ("bob", "plan-2"),
        ]


class TestGlobalAdmins:
    def test_only_break_glass(self) -> None:
        count = count_global_admins(
            [standing("bg1", GLOBAL_ADMINISTRATOR), standing("bg2", GLOBAL_ADMINISTRATOR)],
            break_glass=BREAK_GLASS,
        )
        assert (count.standing, count.break_glass_holding, count.others) == (2, 2, ())
        assert count.healthy
        assert (
            count.reading == "Only the 2 break-glass account(s) hold standing Global Administrator."
        )

    def test_others_and_a_missing_break_glass(self) -> None:
        count = count_global_admins(
            [
                standing("bg1", GLOBAL_ADMINISTRATOR),
                standing("zed", GLOBAL_ADMINISTRATOR, principal_name="zed@x"),
                standing("amy", GLOBAL_ADMINISTRATOR, principal_name="amy@x"),
                standing("amy", USER_ADMINISTRATOR),
                standing("tom", GLOBAL_ADMINISTRATOR, directory_scope_id="/administrativeUnits/1"),
            ],
            break_glass=BREAK_GLASS,
        )
        assert (count.standing, count.break_glass_configured, count.break_glass_holding) == (
            3,
            2,
            1,
        )
        assert [a.principal_id for a in count.others] == ["amy", "zed"]
        assert not count.healthy
        assert count.reading == (
            "2 standing Global Administrator(s) besides the break-glass accounts: make them "
            "eligible, or record why they stay. 1 of the 2 break-glass account(s) hold no "
            "standing Global Administrator: emergency access is at risk."
        )
