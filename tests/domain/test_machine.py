"""The plan and phase state machines: every (state, event) pair, and random sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.domain.machine import (
    OPERATOR_EVENTS,
    PHASE_EVENTS,
    PHASE_TRANSITIONS,
    PLAN_TRANSITIONS,
    TERMINAL_PLAN_STATES,
    Event,
    Gate,
    PhaseState,
    PhaseStatus,
    PlanState,
    PlanStatus,
    Refusal,
    Transition,
    allowed_events,
    apply,
    initial_status,
)

PLAN_ONLY_EVENTS = [e for e in Event if e not in PHASE_EVENTS]


def _status(
    state: PlanState, phases: tuple[PhaseStatus, ...], target: str | None = None
) -> PlanStatus:
    return PlanStatus(state=state, version=7, phases=phases, rollback_target=target)


def _phases_for(state: PlanState, event: Event) -> tuple[PhaseStatus, ...]:
    """Phases that satisfy the event's guard whenever the plan table allows the event."""
    if event is Event.advance:
        return (
            PhaseStatus("pilot", PhaseState.completed),
            PhaseStatus("feedback", PhaseState.awaiting_gate, Gate.manual),
        )
    if event is Event.retry:
        return (PhaseStatus("pilot", PhaseState.failed),)
    return (PhaseStatus("pilot", PhaseState.pending), PhaseStatus("feedback", PhaseState.pending))


class TestPlanTable:
    @pytest.mark.parametrize(
        ("state", "event"), list(itertools.product(PlanState, PLAN_ONLY_EVENTS)), ids=str
    )
    def test_every_plan_state_and_event(self, state: PlanState, event: Event) -> None:
        target = "pilot" if event is Event.partial_rollback_finished else None
        status = _status(state, _phases_for(state, event), target)
        outcome = apply(status, event)
        expected = PLAN_TRANSITIONS.get((state, event))
        if expected is None:
            assert isinstance(outcome, Refusal)
            assert outcome.current_state is state
            assert outcome.allowed_events == allowed_events(status)
            assert f"{event.value} does not apply to a {state.value} plan" == outcome.reason
        else:
            assert isinstance(outcome, Transition), outcome
            assert outcome.to_state is expected
            assert outcome.version == status.version + 1

    def test_refusal_lists_only_events_that_apply(self) -> None:
        status = _status(PlanState.paused, _phases_for(PlanState.paused, Event.pause))
        refusal = apply(status, Event.pause)
        assert isinstance(refusal, Refusal)
        assert set(refusal.allowed_events) == {Event.resume, Event.abort, Event.rollback}
        for event in refusal.allowed_events:
            assert isinstance(apply(status, event), Transition)

    def test_completed_plan_can_only_be_rolled_back(self) -> None:
        status = _status(PlanState.completed, (PhaseStatus("pilot", PhaseState.completed),))
        assert allowed_events(status) == (Event.rollback,)

    def test_terminal_states_accept_no_operator_event(self) -> None:
        for state in TERMINAL_PLAN_STATES:
            status = _status(state, (PhaseStatus("pilot", PhaseState.completed),))
            assert allowed_events(status, operator_only=False) == ()


class TestPhaseTable:
    @pytest.mark.parametrize(
        ("state", "event"),
        list(itertools.product(PhaseState, sorted(PHASE_EVENTS | {Event.retry}))),
        ids=str,
    )
    def test_every_phase_state_and_event(self, state: PhaseState, event: Event) -> None:
        plan_state = PlanState.rolling_back if event is Event.roll_back_phase else PlanState.running
        if event is Event.retry:
            plan_state = PlanState.failed
        status = _status(plan_state, (PhaseStatus("only", state),))
        outcome = apply(status, event, phase_key=None if event is Event.retry else "only")
        expected = PHASE_TRANSITIONS.get((state, event))
        if expected is None:
            assert isinstance(outcome, Refusal)
            assert outcome.allowed_events == allowed_events(status)
        else:
            assert isinstance(outcome, Transition), outcome
            assert outcome.status.phases[0].state is expected


class TestGuards:
    def test_advance_refused_without_a_manual_gate(self) -> None:
        status = _status(PlanState.running, (PhaseStatus("pilot", PhaseState.running),))
        refusal = apply(status, Event.advance)
        assert isinstance(refusal, Refusal)
        assert refusal.reason == "no phase is waiting at a manual gate"
        assert Event.advance not in refusal.allowed_events

    def test_advance_names_the_phase_waiting(self) -> None:
        status = _status(PlanState.running, _phases_for(PlanState.running, Event.advance))
        outcome = apply(status, Event.advance, phase_key="pilot")
        assert isinstance(outcome, Refusal)
        assert "'pilot' is not waiting at a manual gate" in outcome.reason
        moved = apply(status, Event.advance, phase_key="feedback")
        assert isinstance(moved, Transition)
        assert moved.status.phase("feedback").state is PhaseState.running  # type: ignore[union-attr]

    def test_resume_after_a_partial_rollback_is_refused(self) -> None:
        phases = (
            PhaseStatus("pilot", PhaseState.completed),
            PhaseStatus("wave-2", PhaseState.rolled_back),
        )
        refusal = apply(_status(PlanState.paused, phases), Event.resume)
        assert isinstance(refusal, Refusal)
        assert refusal.reason.startswith("phases rolled back (wave-2) cannot run again")
        assert refusal.allowed_events == (Event.abort, Event.rollback)

    def test_later_phase_cannot_begin_before_earlier_completes(self) -> None:
        phases = (PhaseStatus("a", PhaseState.running), PhaseStatus("b", PhaseState.due))
        refusal = apply(_status(PlanState.running, phases), Event.begin, phase_key="b")
        assert isinstance(refusal, Refusal)
        assert "before the phases before it complete" in refusal.reason

    def test_rollback_is_newest_first(self) -> None:
        phases = (PhaseStatus("a", PhaseState.completed), PhaseStatus("b", PhaseState.completed))
        refusal = apply(
            _status(PlanState.rolling_back, phases), Event.roll_back_phase, phase_key="a"
        )
        assert isinstance(refusal, Refusal)
        assert "newest first" in refusal.reason

    def test_partial_rollback_needs_a_phase_that_ran(self) -> None:
        phases = (PhaseStatus("a", PhaseState.completed), PhaseStatus("b", PhaseState.pending))
        refusal = apply(_status(PlanState.paused, phases), Event.rollback, phase_key="b")
        assert isinstance(refusal, Refusal)
        assert "has not run" in refusal.reason
        moved = apply(_status(PlanState.paused, phases), Event.rollback, phase_key="a")
        assert isinstance(moved, Transition)
        assert moved.status.rollback_target == "a"

    def test_cancelling_a_draft_cancels_its_phases(self) -> None:
        outcome = apply(
            _status(PlanState.draft, _phases_for(PlanState.draft, Event.abort)), Event.abort
        )
        assert isinstance(outcome, Transition)
        assert {p.state for p in outcome.status.phases} == {PhaseState.cancelled}

    def test_full_rollback_cancels_phases_that_never_ran(self) -> None:
        phases = (
            PhaseStatus("a", PhaseState.rolled_back),
            PhaseStatus("b", PhaseState.awaiting_gate, Gate.manual),
            PhaseStatus("c", PhaseState.pending),
        )
        outcome = apply(_status(PlanState.rolling_back, phases), Event.rollback_finished)
        assert isinstance(outcome, Transition)
        assert [p.state for p in outcome.status.phases] == [
            PhaseState.rolled_back,
            PhaseState.cancelled,
            PhaseState.cancelled,
        ]

    def test_last_phase_finishing_completes_the_plan(self) -> None:
        phases = (PhaseStatus("a", PhaseState.completed), PhaseStatus("b", PhaseState.running))
        outcome = apply(_status(PlanState.running, phases), Event.finish, phase_key="b")
        assert isinstance(outcome, Transition)
        assert outcome.to_state is PlanState.completed

    def test_phase_failure_fails_the_plan_and_retry_resumes_it(self) -> None:
        phases = (PhaseStatus("a", PhaseState.running),)
        failed = apply(_status(PlanState.running, phases), Event.fail, phase_key="a")
        assert isinstance(failed, Transition)
        assert failed.to_state is PlanState.failed
        retried = apply(failed.status, Event.retry)
        assert isinstance(retried, Transition)
        assert retried.to_state is PlanState.running
        assert retried.status.phases[0].state is PhaseState.running


KEYS = ("pilot", "feedback", "all-admins")


class PlanLifecycle(RuleBasedStateMachine):
    """Random event sequences keep the machine's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.status = initial_status(
            [("pilot", Gate.auto), ("feedback", Gate.manual), ("all-admins", Gate.auto)]
        )
        self.completed_order: list[str] = []

    def _step(self, event: Event, phase_key: str | None = None) -> None:
        before = self.status
        outcome = apply(before, event, phase_key=phase_key)
        if isinstance(outcome, Transition):
            assert before.state not in TERMINAL_PLAN_STATES, "terminal states must absorb"
            assert outcome.version == before.version + 1
            assert outcome.status.version == before.version + 1
            for change in outcome.phase_changes:
                if change.to_state is PhaseState.completed:
                    self.completed_order.append(change.key)
            self.status = outcome.status
        else:
            assert outcome.current_state is before.state
            assert self.status == before
            assert all(isinstance(apply(before, e), Transition) for e in outcome.allowed_events)

    @rule(event=st.sampled_from(OPERATOR_EVENTS), key=st.sampled_from((None, *KEYS)))
    def operator(self, event: Event, key: str | None) -> None:
        self._step(event, key)

    @rule(event=st.sampled_from(sorted(PHASE_EVENTS)), key=st.sampled_from(KEYS))
    def engine(self, event: Event, key: str) -> None:
        self._step(event, key)

    @rule(
        event=st.sampled_from(
            [
                Event.tick,
                Event.rollback_finished,
                Event.partial_rollback_finished,
                Event.rollback_failed,
            ]
        )
    )
    def system(self, event: Event) -> None:
        self._step(event)

    @rule(choice=st.integers(min_value=0, max_value=50))
    def something_that_applies(self, choice: int) -> None:
        """Bias towards progress so runs reach running, completed and rolled-back plans."""
        options = [
            (event, key)
            for event in Event
            for key in ((None,) if event not in PHASE_EVENTS else KEYS)
            if isinstance(apply(self.status, event, phase_key=key), Transition)
        ]
        if options:
            self._step(*options[choice % len(options)])

    @precondition(lambda self: self.status.state in TERMINAL_PLAN_STATES)
    @rule(event=st.sampled_from(list(Event)), key=st.sampled_from((None, *KEYS)))
    def terminal_absorbs(self, event: Event, key: str | None) -> None:
        assert isinstance(apply(self.status, event, phase_key=key), Refusal)

    @invariant()
    def at_most_one_phase_running(self) -> None:
        assert sum(p.state is PhaseState.running for p in self.status.phases) <= 1

    @invariant()
    def phases_complete_in_order(self) -> None:
        states = [p.state for p in self.status.phases]
        for index, state in enumerate(states):
            if state is PhaseState.completed:
                assert all(
                    s in {PhaseState.completed, PhaseState.rolled_back} for s in states[:index]
                ), states
        assert self.completed_order == sorted(self.completed_order, key=list(KEYS).index)


PlanLifecycle.TestCase.settings = hsettings(max_examples=300, stateful_step_count=40, deadline=None)
TestPlanLifecycle = PlanLifecycle.TestCase
