"""Health gates judge an observation against a threshold and say why, in plain words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.drift import AssignmentSource, DriftFinding, DriftKind
from app.domain.health import GateObservation, describe_window, evaluate_gate, evaluate_gates
from app.domain.plan import HealthGate, HealthGateKind
from app.domain.roles import USER_ADMINISTRATOR
from app.domain.signals import ActivationFact, SignalRules, compute_signals, resolve_activations

NOW = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)


def observation(drift: int = 0) -> GateObservation:
    facts = [
        ActivationFact(
            request_id=f"r{i}",
            principal_id="dave",
            role_definition_id=USER_ADMINISTRATOR,
            requested_at=NOW - timedelta(days=1, hours=i),
            status=status,
            approval_required=True,
            start_at=NOW - timedelta(days=1, hours=i),
            end_at=NOW - timedelta(days=1, hours=i) + timedelta(hours=hours),
            max_duration=timedelta(hours=4),
            ticket_number=ticket,
        )
        for i, (status, hours, ticket) in enumerate(
            [
                ("Denied", 4, None),
                ("Denied", 4, None),
                ("Failed", 1, "INC1"),
                ("Provisioned", 2, "INC2"),
            ]
        )
    ]
    activations = resolve_activations(facts, [], now=NOW, renewal_gap=timedelta(minutes=30))
    findings = tuple(
        DriftFinding(
            plan_id="p",
            plan_name="p",
            kind=DriftKind.reassigned_after_conversion,
            source=AssignmentSource.outside_pim,
            principal_id=f"user-{i}",
            principal_name=f"user{i}@contoso.test",
            role_definition_id=USER_ADMINISTRATOR,
            directory_scope_id="/",
            assignment_id=f"a{i}",
            seen_at=NOW,
            assigned_at=None,
            assigned_by=None,
            converted_at=None,
        )
        for i in range(drift)
    )
    return GateObservation(
        signals=compute_signals(activations, maximum=None, rules=SignalRules()), drift=findings
    )


class TestEvaluateGate:
    def test_failed_approvals_over_the_threshold(self) -> None:
        gate = HealthGate(kind=HealthGateKind.max_failed_approvals, threshold=2)
        result = evaluate_gate(gate, observation())
        assert not result.passed
        assert result.observed == 3
        assert result.detail == (
            "max_failed_approvals: 3 failed approval(s) in the last 7 days (denied 2, failed 1, "
            "expired 0), more than the 2 allowed"
        )

    def test_failed_approvals_at_the_threshold_pass(self) -> None:
        gate = HealthGate(kind=HealthGateKind.max_failed_approvals, threshold=3)
        result = evaluate_gate(gate, observation())
        assert result.passed
        assert result.detail.endswith("at most 3 allowed")

    def test_no_drift(self) -> None:
        gate = HealthGate(kind=HealthGateKind.no_drift)
        assert evaluate_gate(gate, observation()).passed
        result = evaluate_gate(gate, observation(drift=5))
        assert not result.passed
        assert result.detail == (
            "no_drift: 5 standing assignment(s) came back after the rollout: "
            "user0@contoso.test / User Administrator (outside PIM); "
            "user1@contoso.test / User Administrator (outside PIM); "
            "user2@contoso.test / User Administrator (outside PIM) and 2 more, "
            "more than the 0 allowed"
        )

    def test_activations_without_ticket(self) -> None:
        gate = HealthGate(
            kind=HealthGateKind.max_activations_without_ticket,
            threshold=1,
            window=timedelta(days=1),
        )
        result = evaluate_gate(gate, observation())
        assert (result.passed, result.observed) == (False, 2)
        assert "2 of 4 activation(s) in the last day had no ticket reference" in result.detail

    def test_share_at_max(self) -> None:
        gate = HealthGate(kind=HealthGateKind.max_share_at_max_duration, threshold=0.5)
        result = evaluate_gate(gate, observation())
        assert (result.passed, result.observed) == (True, 0.5)
        assert "2 of 4 activation(s) in the last 7 days asked for the role's maximum" in (
            result.detail
        )

    def test_several(self) -> None:
        gates = [
            HealthGate(kind=HealthGateKind.max_failed_approvals, threshold=5),
            HealthGate(kind=HealthGateKind.no_drift),
        ]
        results = evaluate_gates(gates, [observation(), observation(drift=1)])
        assert [r.passed for r in results] == [True, False]


@pytest.mark.parametrize(
    ("window", "text"),
    [
        (timedelta(days=7), "the last 7 days"),
        (timedelta(days=1), "the last day"),
        (timedelta(hours=1), "the last hour"),
        (timedelta(hours=12), "the last 12 hours"),
        (timedelta(minutes=90), "the last 90 minutes"),
    ],
)
def test_describe_window(window: timedelta, text: str) -> None:
    assert describe_window(window) == text
