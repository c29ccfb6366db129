"""Health gates: does a signal hold well enough for the next phase to start?

A gate names a signal, a threshold (the most that is still fine) and a window that ends now. The
engine gathers the observation for each window; this module only judges it and says why, in
words an operator can act on (like an analysis step of a progressive-delivery tool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from app.domain.drift import DriftFinding
from app.domain.plan import HealthGate, HealthGateKind
from app.domain.roles import role_name
from app.domain.signals import SignalSet


@dataclass(frozen=True)
class GateObservation:
    signals: SignalSet
    """Activation signals over the gate's window, for the plan's target roles."""
    drift: tuple[DriftFinding, ...] = ()
    """The plan's open drift findings (standing assignments present now)."""


@dataclass(frozen=True)
class GateResult:
    gate: HealthGate
    passed: bool
    observed: float
    detail: str


def describe_window(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return "the last day" if days == 1 else f"the last {days} days"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "the last hour" if hours == 1 else f"the last {hours} hours"
    return f"the last {max(1, seconds // 60)} minutes"


def _limit(value: float) -> str:
    return f"{value:g}"


def _drift_line(finding: DriftFinding) -> str:
    who = finding.principal_name or finding.principal_id
    how = "outside PIM" if finding.source.value == "outside_pim" else "through PIM"
    return f"{who} / {role_name(finding.role_definition_id)} ({how})"


def evaluate_gate(gate: HealthGate, observation: GateObservation) -> GateResult:
    signals = observation.signals
    window = describe_window(gate.window)
    limit = _limit(gate.threshold)
    if gate.kind is HealthGateKind.max_failed_approvals:
        approvals = signals.approvals
        observed: float = approvals.failed_approvals
        passed = observed <= gate.threshold
        detail = (
            f"{approvals.failed_approvals} failed approval(s) in {window} (denied "
            f"{approvals.denied}, failed {approvals.failed}, expired {approvals.expired})"
        )
    elif gate.kind is HealthGateKind.no_drift:
        observed = len(observation.drift)
        passed = observed <= gate.threshold
        detail = f"{len(observation.drift)} standing assignment(s) came back after the rollout"
        if observation.drift:
            shown = "; ".join(_drift_line(f) for f in observation.drift[:3])
            more = len(observation.drift) - 3
            detail += f": {shown}" + (f" and {more} more" if more > 0 else "")
    elif gate.kind is HealthGateKind.max_activations_without_ticket:
        observed = signals.tickets.without_ticket
        passed = observed <= gate.threshold
        detail = (
            f"{signals.tickets.without_ticket} of {signals.activations} activation(s) in "
            f"{window} had no ticket reference"
        )
    else:
        duration = signals.duration
        share = duration.share_at_max or 0.0
        observed = share
        passed = share <= gate.threshold
        detail = (
            f"{duration.at_max} of {duration.measured} activation(s) in {window} asked for the "
            f"role's maximum (share {share:.2f})"
        )
    verdict = f"at most {limit} allowed" if passed else f"more than the {limit} allowed"
    return GateResult(gate, passed, observed, f"{gate.kind.value}: {detail}, {verdict}")


def evaluate_gates(
    gates: Sequence[HealthGate], observations: Sequence[GateObservation]
) -> list[GateResult]:
    """``observations[i]`` is what ``gates[i]`` looks at."""
    return [evaluate_gate(g, o) for g, o in zip(gates, observations, strict=True)]
