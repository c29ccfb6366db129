"""Plan and phase state machines as data: transition tables plus a pure ``apply``.

``apply`` never performs effects and never reads a clock; it answers a ``Transition`` (the new
status, version + 1) or a ``Refusal`` (the current state and the events that do apply), which
the API turns into a 409.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class PlanState(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    running = "running"
    paused = "paused"
    completed = "completed"
    failed = "failed"
    rolling_back = "rolling_back"
    rolled_back = "rolled_back"
    cancelled = "cancelled"


class PhaseState(StrEnum):
    pending = "pending"
    due = "due"
    awaiting_gate = "awaiting_gate"
    running = "running"
    completed = "completed"
    failed = "failed"
    rolled_back = "rolled_back"
    cancelled = "cancelled"  # never ran: the plan was cancelled or rolled back before it


class Gate(StrEnum):
    auto = "auto"
    manual = "manual"


class Event(StrEnum):
    # operator events (the API's plan actions)
    start = "start"
    pause = "pause"
    resume = "resume"
    advance = "advance"
    retry = "retry"
    abort = "abort"
    rollback = "rollback"
    # scheduler / engine events on the plan
    tick = "tick"
    rollback_finished = "rollback_finished"
    partial_rollback_finished = "partial_rollback_finished"
    rollback_failed = "rollback_failed"
    # engine events on one phase
    become_due = "become_due"
    hold = "hold"
    begin = "begin"
    finish = "finish"
    fail = "fail"
    roll_back_phase = "roll_back_phase"


OPERATOR_EVENTS: tuple[Event, ...] = (
    Event.start,
    Event.pause,
    Event.resume,
    Event.advance,
    Event.retry,
    Event.abort,
    Event.rollback,
)
PHASE_EVENTS: frozenset[Event] = frozenset(
    {Event.become_due, Event.hold, Event.begin, Event.finish, Event.fail, Event.roll_back_phase}
)
TERMINAL_PLAN_STATES: frozenset[PlanState] = frozenset({PlanState.rolled_back, PlanState.cancelled})
# A completed plan is finished but can still be undone: rollback is its one way out.
FINISHED_PLAN_STATES: frozenset[PlanState] = TERMINAL_PLAN_STATES | {PlanState.completed}

S, P, E = PlanState, PhaseState, Event

PLAN_TRANSITIONS: Mapping[tuple[PlanState, Event], PlanState] = {
    (S.draft, E.start): S.scheduled,
    (S.draft, E.abort): S.cancelled,
    (S.scheduled, E.abort): S.cancelled,
    (S.scheduled, E.tick): S.running,
    (S.scheduled, E.pause): S.paused,
    (S.running, E.pause): S.paused,
    (S.paused, E.resume): S.running,
    (S.running, E.advance): S.running,
    (S.failed, E.retry): S.running,
    (S.running, E.rollback): S.rolling_back,
    (S.paused, E.rollback): S.rolling_back,
    (S.failed, E.rollback): S.rolling_back,
    (S.completed, E.rollback): S.rolling_back,
    (S.running, E.abort): S.rolling_back,
    (S.paused, E.abort): S.rolling_back,
    (S.failed, E.abort): S.rolling_back,
    (S.rolling_back, E.rollback_finished): S.rolled_back,
    (S.rolling_back, E.partial_rollback_finished): S.paused,
    (S.rolling_back, E.rollback_failed): S.failed,
    # phase events that move the plan too
    (S.running, E.become_due): S.running,
    (S.running, E.hold): S.running,
    (S.running, E.begin): S.running,
    (S.running, E.finish): S.running,  # becomes completed when it was the last phase
    (S.running, E.fail): S.failed,
    (S.rolling_back, E.roll_back_phase): S.rolling_back,
}

PHASE_TRANSITIONS: Mapping[tuple[PhaseState, Event], PhaseState] = {
    (P.pending, E.become_due): P.due,
    (P.due, E.hold): P.awaiting_gate,
    (P.due, E.begin): P.running,
    (P.awaiting_gate, E.begin): P.running,
    (P.running, E.finish): P.completed,
    (P.running, E.fail): P.failed,
    (P.failed, E.retry): P.running,
    (P.running, E.roll_back_phase): P.rolled_back,
    (P.completed, E.roll_back_phase): P.rolled_back,
    (P.failed, E.roll_back_phase): P.rolled_back,
}


@dataclass(frozen=True)
class PhaseStatus:
    key: str
    state: PhaseState = PhaseState.pending
    gate: Gate = Gate.auto


@dataclass(frozen=True)
class PlanStatus:
    state: PlanState
    version: int
    phases: tuple[PhaseStatus, ...]
    rollback_target: str | None = None

    def phase(self, key: str) -> PhaseStatus | None:
        return next((p for p in self.phases if p.key == key), None)

    def index_of(self, key: str) -> int:
        return next(i for i, p in enumerate(self.phases) if p.key == key)


@dataclass(frozen=True)
class PhaseChange:
    key: str
    from_state: PhaseState
    to_state: PhaseState


@dataclass(frozen=True)
class Transition:
    event: Event
    from_state: PlanState
    to_state: PlanState
    version: int
    status: PlanStatus
    phase_changes: tuple[PhaseChange, ...] = ()


@dataclass(frozen=True)
class Refusal:
    event: Event
    current_state: PlanState
    allowed_events: tuple[Event, ...]
    reason: str
    phase_key: str | None = None
    phase_state: PhaseState | None = field(default=None)


Outcome = Transition | Refusal


def _with_phases(status: PlanStatus, changes: Iterable[PhaseChange]) -> tuple[PhaseStatus, ...]:
    by_key = {c.key: c.to_state for c in changes}
    return tuple(replace(p, state=by_key.get(p.key, p.state)) for p in status.phases)


def _earlier_all_completed(status: PlanStatus, key: str) -> bool:
    index = status.index_of(key)
    return all(p.state is PhaseState.completed for p in status.phases[:index])


_NOT_STARTED = frozenset({PhaseState.pending, PhaseState.due, PhaseState.awaiting_gate})


def _ran(phase: PhaseStatus) -> bool:
    return phase.state in {PhaseState.running, PhaseState.completed, PhaseState.failed}


def _guard(status: PlanStatus, event: Event, phase_key: str | None) -> str | None:
    """Why an event that the plan table allows still does not apply to this status, or None."""
    phases = status.phases
    if event is Event.advance:
        gated = [p for p in phases if p.state is PhaseState.awaiting_gate and p.gate is Gate.manual]
        if not gated:
            return "no phase is waiting at a manual gate"
        if phase_key is not None and phase_key not in {p.key for p in gated}:
            return f"phase {phase_key!r} is not waiting at a manual gate"
        if any(p.state is PhaseState.running for p in phases):
            return "another phase is running"
    if event is Event.resume and any(p.state is PhaseState.rolled_back for p in phases):
        # Its work items and journal keys are spent: running it again would skip everything.
        undone = ", ".join(p.key for p in phases if p.state is PhaseState.rolled_back)
        return (
            f"phases rolled back ({undone}) cannot run again; roll back the rest or abort, "
            "and create a new plan to redo them"
        )
    if event is Event.retry and not any(p.state is PhaseState.failed for p in phases):
        return "no phase has failed"
    if event is Event.tick and not phases:
        return "the plan has no phases"
    if event is Event.rollback and phase_key is not None:
        target = status.phase(phase_key)
        if target is None:
            return f"the plan has no phase {phase_key!r}"
        if not _ran(target):
            return f"phase {phase_key!r} has not run, so there is nothing to roll back"
    if event is Event.partial_rollback_finished and status.rollback_target is None:
        return "no partial rollback is in progress"
    if event is Event.rollback_finished and status.rollback_target is not None:
        return "a partial rollback ends with partial_rollback_finished"
    return None


def _phase_guard(status: PlanStatus, event: Event, phase: PhaseStatus) -> str | None:
    if event in {Event.become_due, Event.begin} and not _earlier_all_completed(status, phase.key):
        return f"phase {phase.key!r} cannot start before the phases before it complete"
    if event is Event.begin and any(
        p.state is PhaseState.running for p in status.phases if p.key != phase.key
    ):
        return "another phase is running"
    if event is Event.roll_back_phase:
        later = status.phases[status.index_of(phase.key) + 1 :]
        if any(_ran(p) for p in later):
            return "later phases must be rolled back first (newest first)"
    return None


@dataclass(frozen=True)
class _Denied:
    reason: str
    phase: PhaseStatus | None = None


def _decide(status: PlanStatus, event: Event, phase_key: str | None) -> Transition | _Denied:
    next_state = PLAN_TRANSITIONS.get((status.state, event))
    if next_state is None:
        return _Denied(f"{event.value} does not apply to a {status.state.value} plan")
    if event in PHASE_EVENTS:
        return _decide_phase_event(status, event, phase_key, next_state)
    reason = _guard(status, event, phase_key)
    if reason is not None:
        return _Denied(reason)

    changes: list[PhaseChange] = []
    rollback_target = status.rollback_target
    if event is Event.advance:
        target = next(
            p
            for p in status.phases
            if p.state is PhaseState.awaiting_gate
            and p.gate is Gate.manual
            and (phase_key is None or p.key == phase_key)
        )
        changes.append(PhaseChange(target.key, target.state, PhaseState.running))
    elif event is Event.retry:
        changes += [
            PhaseChange(p.key, p.state, PhaseState.running)
            for p in status.phases
            if p.state is PhaseState.failed
        ]
    elif event in {Event.rollback, Event.abort}:
        rollback_target = phase_key if event is Event.rollback else None
    elif event in {Event.rollback_finished, Event.partial_rollback_finished}:
        rollback_target = None
    if next_state in {PlanState.cancelled, PlanState.rolled_back}:
        # A finished plan leaves no phase looking as if it might still run.
        changes += [
            PhaseChange(p.key, p.state, PhaseState.cancelled)
            for p in status.phases
            if p.state in _NOT_STARTED
        ]
    new_status = PlanStatus(
        state=next_state,
        version=status.version + 1,
        phases=_with_phases(status, changes),
        rollback_target=rollback_target,
    )
    return Transition(
        event, status.state, next_state, new_status.version, new_status, tuple(changes)
    )


def _decide_phase_event(
    status: PlanStatus, event: Event, phase_key: str | None, plan_next: PlanState
) -> Transition | _Denied:
    phase = status.phase(phase_key) if phase_key else None
    if phase is None:
        return _Denied(f"{event.value} needs the key of an existing phase")
    phase_next = PHASE_TRANSITIONS.get((phase.state, event))
    if phase_next is None:
        return _Denied(f"{event.value} does not apply to a {phase.state.value} phase", phase)
    reason = _phase_guard(status, event, phase)
    if reason is not None:
        return _Denied(reason, phase)
    change = PhaseChange(phase.key, phase.state, phase_next)
    phases = _with_phases(status, [change])
    if event is Event.finish and all(p.state is PhaseState.completed for p in phases):
        plan_next = PlanState.completed
    new_status = PlanStatus(plan_next, status.version + 1, phases, status.rollback_target)
    return Transition(event, status.state, plan_next, new_status.version, new_status, (change,))


def apply(status: PlanStatus, event: Event, *, phase_key: str | None = None) -> Outcome:
    """Apply ``event`` to ``status``; phase events name their phase with ``phase_key``."""
    decision = _decide(status, event, phase_key)
    if isinstance(decision, Transition):
        return decision
    return Refusal(
        event=event,
        current_state=status.state,
        allowed_events=allowed_events(status),
        reason=decision.reason,
        phase_key=decision.phase.key if decision.phase else None,
        phase_state=decision.phase.state if decision.phase else None,
    )


def allowed_events(status: PlanStatus, *, operator_only: bool = True) -> tuple[Event, ...]:
    """Events that would be accepted now; a phase event counts when any phase accepts it."""
    candidates = OPERATOR_EVENTS if operator_only else tuple(Event)
    allowed: list[Event] = []
    for event in candidates:
        keys: Iterable[str | None] = (
            [p.key for p in status.phases] if event in PHASE_EVENTS else [None]
        )
        if any(isinstance(_decide(status, event, key), Transition) for key in keys):
            allowed.append(event)
    return tuple(allowed)


def initial_status(phases: Iterable[tuple[str, Gate]]) -> PlanStatus:
    return PlanStatus(
        state=PlanState.draft,
        version=1,
        phases=tuple(PhaseStatus(key=key, gate=gate) for key, gate in phases),
    )
