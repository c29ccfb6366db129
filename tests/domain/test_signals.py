"""Activation signals: outcomes, durations against the maximum, tickets, justifications, spikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.signals import (
    DURATION_BUCKETS,
    ActivationFact,
    ApprovalOutcome,
    DeactivationFact,
    DurationReading,
    JustificationRules,
    ReadingRules,
    SignalRules,
    Smell,
    SpikeRule,
    approval_outcome,
    build_signal_report,
    compute_signals,
    duration_bucket,
    format_duration,
    justification_smell,
    normalize_justification,
    read_durations,
    resolve_activations,
    spike_check,
    week_start,
    weeks_covering,
)

NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)  # a Wednesday
ROLE = "role-a"
OTHER = "role-b"
HOUR = timedelta(hours=1)
GAP = timedelta(minutes=30)
RULES = SignalRules(
    justifications=JustificationRules.of(min_length=10, phrases=["Doing my job", "admin work"]),
    reading=ReadingRules(attention_share=0.5, renewal_share_for_tight=0.25, min_activations=5),
    renewal_gap=GAP,
)


def fact(at: datetime, hours: float = 1, **over: Any) -> ActivationFact:
    values: dict[str, Any] = {
        "request_id": f"req-{at.isoformat()}-{over.get('principal_id', 'alice')}",
        "principal_id": "alice",
        "role_definition_id": ROLE,
        "requested_at": at,
        "status": "Provisioned",
        "start_at": at,
        "end_at": at + timedelta(hours=hours),
        "max_duration": 4 * HOUR,
        "justification": "Rotating the payroll app certificate",
        "ticket_number": "INC1",
    }
    values.update(over)
    return ActivationFact(**values)


class TestApprovalOutcome:
    @pytest.mark.parametrize(
        ("status", "required", "expired", "outcome"),
        [
            ("Provisioned", False, False, ApprovalOutcome.not_required),
            ("Granted", True, False, ApprovalOutcome.approved),
            ("provisioned", True, False, ApprovalOutcome.approved),
            ("Revoked", False, False, ApprovalOutcome.not_required),
            ("PendingApproval", True, False, ApprovalOutcome.pending),
            ("PendingAdminDecision", True, False, ApprovalOutcome.pending),
            ("Denied", True, False, ApprovalOutcome.denied),
            ("Failed", True, False, ApprovalOutcome.failed),
            ("Canceled", True, False, ApprovalOutcome.canceled),
            ("Canceled", True, True, ApprovalOutcome.expired),
            ("PendingApproval", True, True, ApprovalOutcome.expired),
            ("Provisioned", True, True, ApprovalOutcome.approved),
            (None, False, False, ApprovalOutcome.pending),
        ],
    )
    def test_status_maps_to_outcome(
        self, status: str | None, required: bool, expired: bool, outcome: ApprovalOutcome
    ) -> None:
        assert approval_outcome(status, approval_required=required, expired=expired) is outcome


class TestResolveActivations:
    def test_runs_to_its_end(self) -> None:
        (activation,) = resolve_activations(
            [fact(NOW - 10 * HOUR, hours=2)], [], now=NOW, renewal_gap=GAP
        )
        assert activation.actual_duration == 2 * HOUR
        assert not activation.ended_early
        assert activation.at_max is False

    def test_a_deactivation_inside_the_window_ends_it_early(self) -> None:
        start = NOW - 10 * HOUR
        deactivation = DeactivationFact("alice", ROLE, start + timedelta(minutes=20))
        (activation,) = resolve_activations(
            [fact(start, hours=4)], [deactivation], now=NOW, renewal_gap=GAP
        )
        assert activation.actual_duration == timedelta(minutes=20)
        assert activation.ended_early
        assert activation.at_max is True

    def test_a_deactivation_of_another_role_or_after_the_end_does_not(self) -> None:
        start = NOW - 10 * HOUR
        others = [
            DeactivationFact("alice", OTHER, start + HOUR),
            DeactivationFact("bob", ROLE, start + HOUR),
            DeactivationFact("alice", ROLE, start + 3 * HOUR),
        ]
        (activation,) = resolve_activations(
            [fact(start, hours=2)], others, now=NOW, renewal_gap=GAP
        )
        assert activation.actual_duration == 2 * HOUR
        assert not activation.ended_early

    def test_still_running_or_not_granted_has_no_actual_duration(self) -> None:
        running = fact(NOW - HOUR, hours=4)
        denied = fact(NOW - 8 * HOUR, status="Denied", approval_required=True)
        future = fact(NOW + HOUR, status="Granted")
        resolved = resolve_activations([running, denied, future], [], now=NOW, renewal_gap=GAP)
        assert [a.actual_duration for a in resolved] == [None, None, None]
        assert [a.outcome for a in resolved] == [
            ApprovalOutcome.denied,
            ApprovalOutcome.not_required,
            ApprovalOutcome.not_required,
        ]

    def test_renewed_when_asked_again_within_the_gap_of_the_end(self) -> None:
        first = fact(NOW - 10 * HOUR, hours=4)
        again = fact(NOW - 6 * HOUR + timedelta(minutes=30), hours=1)
        late = fact(NOW - 3 * HOUR, hours=1)
        resolved = resolve_activations([first, again, late], [], now=NOW, renewal_gap=GAP)
        assert [a.renewed for a in resolved] == [True, False, False]

    def test_not_renewed_after_an_early_end(self) -> None:
        start = NOW - 10 * HOUR
        deactivation = DeactivationFact("alice", ROLE, start + HOUR)
        again = fact(start + HOUR + timedelta(minutes=5), hours=1)
        resolved = resolve_activations(
            [fact(start, hours=4), again], [deactivation], now=NOW, renewal_gap=GAP
        )
        assert resolved[0].ended_early
        assert not resolved[0].renewed


class TestJustifications:
    @pytest.mark.parametrize(
        ("text", "smell"),
        [
            (None, Smell.missing),
            ("   ", Smell.missing),
            ("oops", Smell.too_short),
            ("Doing my job!!", Smell.stock_phrase),
            ("  doing   MY job ", Smell.stock_phrase),
            ("admin work.", Smell.stock_phrase),
            ("Investigating INC123 sign-in failures", None),
            ("doing my job on INC123 for the payroll outage", None),
        ],
    )
    def test_smell(self, text: str | None, smell: Smell | None) -> None:
        assert justification_smell(text, RULES.justifications) is smell

    def test_normalize(self) -> None:
        assert normalize_justification("  Doing\tMY  job?! ") == "doing my job"


class TestDurations:
    @pytest.mark.parametrize(
        ("minutes", "bucket"),
        [(15, 0), (60, 0), (61, 1), (120, 1), (180, 2), (181, 3), (239, 3), (240, 4), (300, 4)],
    )
    def test_bucket_of_a_share_of_four_hours(self, minutes: int, bucket: int) -> None:
        assert duration_bucket(timedelta(minutes=minutes), 4 * HOUR) == bucket
        assert len(DURATION_BUCKETS) == 5

    def test_format_duration(self) -> None:
        assert format_duration(8 * HOUR) == "8h"
        assert format_duration(timedelta(minutes=90)) == "1h 30m"
        assert format_duration(timedelta(minutes=45)) == "45m"

    def _read(self, **over: Any) -> tuple[DurationReading, str]:
        values: dict[str, Any] = {
            "measured": 10,
            "at_max": 6,
            "renewed": 0,
            "ended_early": 1,
            "maximum": 8 * HOUR,
            "rules": RULES.reading,
            "renewal_gap": GAP,
        }
        values.update(over)
        return read_durations(**values)

    def test_too_few_to_read(self) -> None:
        reading, text = self._read(measured=4, at_max=4)
        assert reading is DurationReading.not_enough_data
        assert text == "Only 4 activation(s) with a known duration: too few to read."

    def test_healthy_below_the_attention_share(self) -> None:
        reading, text = self._read(at_max=4)
        assert reading is DurationReading.healthy
        assert text.startswith("40% of activations ask for the full 8h")

    def test_max_too_tight_when_max_length_activations_are_renewed(self) -> None:
        reading, text = self._read(at_max=8, renewed=2)
        assert reading is DurationReading.max_too_tight
        assert text.startswith("Max too tight: 80% of activations ask for the full 8h and 2")
        assert "consider raising it" in text

    def test_being_gamed_when_they_are_not(self) -> None:
        reading, text = self._read(at_max=8, renewed=1, ended_early=3)
        assert reading is DurationReading.being_gamed
        assert "only 1 of those 8 were renewed within 30m and 3 were ended early" in text

    def test_unknown_maximum_is_named_generically(self) -> None:
        _, text = self._read(maximum=None, at_max=2)
        assert "the full the role's maximum" in text


class TestComputeSignals:
    def test_counts_every_signal(self) -> None:
        base = NOW - timedelta(days=2)
        facts = [
            fact(base, hours=4, ticket_number=None, justification="doing my job"),
            fact(base + 5 * HOUR, hours=1),
            fact(base + 8 * HOUR, hours=2, principal_id="bob", justification="x"),
            fact(
                base + 9 * HOUR,
                hours=3,
                principal_id="bob",
                status="Denied",
                approval_required=True,
                ticket_number=" ",
            ),
            fact(
                base + 10 * HOUR,
                hours=4,
                principal_id="carol",
                status="PendingApproval",
                approval_required=True,
                justification=None,
            ),
            fact(base + 11 * HOUR, principal_id="dave", max_duration=None, end_at=None),
        ]
        early = DeactivationFact("alice", ROLE, base + 5 * HOUR + timedelta(minutes=10))
        activations = resolve_activations(facts, [early], now=NOW, renewal_gap=GAP)
        signals = compute_signals(activations, maximum=4 * HOUR, rules=RULES)
        assert signals.activations == 6
        assert signals.granted == 4
        duration = signals.duration
        assert duration.measured == 5
        assert duration.buckets == (1, 1, 1, 0, 2)
        assert (duration.at_max, duration.share_at_max) == (2, 0.4)
        assert duration.median_requested == 3 * HOUR
        assert duration.median_actual == 2 * HOUR  # of 10m, 2h, 4h
        assert (duration.ended_early, duration.at_max_renewed) == (1, 0)
        assert duration.reading is DurationReading.healthy
        assert (signals.tickets.without_ticket, signals.tickets.share_without_ticket) == (
            2,
            0.3333,
        )
        j = signals.justifications
        assert (j.smelly, j.missing, j.too_short, j.stock_phrase) == (3, 1, 1, 1)
        a = signals.approvals
        assert (a.required, a.approved, a.denied, a.pending, a.failed_approvals) == (2, 0, 1, 1, 1)

    def test_no_activations(self) -> None:
        signals = compute_signals([], maximum=None, rules=RULES)
        assert signals.activations == 0
        assert signals.duration.share_at_max is None
        assert signals.tickets.share_without_ticket is None
        assert signals.duration.reading is DurationReading.not_enough_data


class TestWeeksAndSpikes:
    def test_week_start_is_monday_midnight_utc(self) -> None:
        assert week_start(NOW) == datetime(2025, 3, 3, tzinfo=UTC)
        assert week_start(datetime(2025, 3, 2, 23, 59, tzinfo=UTC)) == datetime(
            2025, 2, 24, tzinfo=UTC
        )

    def test_weeks_covering(self) -> None:
        weeks = weeks_covering(NOW - timedelta(days=14), NOW)
        assert weeks == [datetime(2025, 2, d, tzinfo=UTC) for d in (17, 24)] + [
            datetime(2025, 3, 3, tzinfo=UTC)
        ]

    def test_spike_against_the_trailing_mean(self) -> None:
        week = datetime(2025, 3, 3, tzinfo=UTC)
        counts = {week - timedelta(weeks=i): n for i, n in ((1, 2), (2, 0), (3, 1), (4, 1))}
        rule = SpikeRule(factor=2.0, min_count=3, baseline_weeks=4)
        assert spike_check({**counts, week: 3}, week, known_from=None, rule=rule).spike is True
        check = spike_check({**counts, week: 2}, week, known_from=None, rule=rule)
        assert (check.baseline, check.spike) == (1.0, False)

    def test_a_quiet_history_makes_min_count_a_spike(self) -> None:
        week = datetime(2025, 3, 3, tzinfo=UTC)
        rule = SpikeRule(factor=2.0, min_count=3, baseline_weeks=4)
        assert spike_check({week: 3}, week, known_from=None, rule=rule).spike is True
        assert spike_check({week: 2}, week, known_from=None, rule=rule).spike is False

    def test_weeks_before_the_history_are_unknown(self) -> None:
        week = datetime(2025, 3, 3, tzinfo=UTC)
        rule = SpikeRule(factor=2.0, min_count=1, baseline_weeks=4)
        check = spike_check({week: 5}, week, known_from=week + timedelta(days=2), rule=rule)
        assert (check.baseline, check.spike) == (None, False)
        counts = {week: 5, week - timedelta(weeks=1): 4}
        check = spike_check(counts, week, known_from=week - timedelta(days=6), rule=rule)
        assert check.baseline == 4.0


class TestBuildSignalReport:
    def test_per_role_per_week_with_coaching(self) -> None:
        since = datetime(2025, 2, 24, tzinfo=UTC)
        facts = [
            # history before the period: one failed approval, the baseline
            fact(since - timedelta(days=3), status="Denied", approval_required=True),
            fact(since + timedelta(days=1), justification="doing my job", ticket_number=None),
            fact(
                since + timedelta(days=2), hours=4, role_definition_id=OTHER, max_duration=8 * HOUR
            ),
            *[
                fact(
                    since + timedelta(days=7, hours=i * 2),
                    principal_id="bob",
                    principal_name="bob@contoso.test",
                    status="Denied",
                    approval_required=True,
                    justification="admin work" if i else "Resetting MFA for the CFO",
                )
                for i in range(4)
            ],
        ]
        activations = resolve_activations(facts, [], now=NOW, renewal_gap=GAP)
        report = build_signal_report(
            activations,
            since=since,
            until=NOW,
            rules=RULES,
            spike_rule=SpikeRule(factor=2.0, min_count=3, baseline_weeks=4),
            role_max={ROLE: 4 * HOUR, OTHER: 8 * HOUR},
            role_names={ROLE: "Alpha Administrator", OTHER: "Beta Administrator"},
        )
        assert report.totals.activations == 6
        assert [w.signals.activations for w in report.weeks] == [2, 4]
        assert [w.signals.approvals.failed_approvals for w in report.weeks] == [0, 4]
        assert [w.failed_approvals_baseline for w in report.weeks] == [0.25, 0.25]
        assert [w.failed_approvals_spike for w in report.weeks] == [False, True]
        assert report.spikes == 1
        assert [r.role_name for r in report.roles] == ["Alpha Administrator", "Beta Administrator"]
        alpha, beta = report.roles
        assert (alpha.totals.activations, beta.totals.activations) == (5, 1)
        assert beta.max_duration == 8 * HOUR
        assert beta.totals.duration.buckets == (0, 1, 0, 0, 0)
        assert [w.failed_approvals_spike for w in alpha.weeks] == [False, True]
        assert [(c.principal_id, c.smelly_justifications) for c in report.coaching] == [
            ("bob", 3),
            ("alice", 1),
        ]
        bob = report.coaching[0]
        assert (bob.principal_name, bob.activations, bob.examples) == (
            "bob@contoso.test",
            4,
            ("admin work",),
        )
