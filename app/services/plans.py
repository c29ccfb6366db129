"""Plans: create from a template, read with derived progress, and move the state machine."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session

from app.db.models import Phase, Plan, Tenant, Transition
from app.db.repos.plans import PlanRepository
from app.db.repos.work_items import WorkItemRepository
from app.domain import machine
from app.domain.machine import Event, Gate, PhaseState, PhaseStatus, PlanState, PlanStatus
from app.domain.plan import (
    ConvertCohortStep,
    CreateAccessReviewsStep,
    MailboxRef,
    PlanSpec,
    PrincipalRef,
    RequireApprovalStep,
    SetNotificationRulesStep,
)
from app.domain.progress import Progress, progress_from_counts
from app.domain.tenant import Binding
from app.domain.validation import PlanInvalidError, parse_plan, problems_from_validation_error
from app.problems import (
    InvalidInputError,
    NotFoundError,
    StaleVersionError,
    TransitionRefusedError,
)
from app.services.templates import load_template
from app.services.tenants import get_tenant

_BINDINGS_ADAPTER: TypeAdapter[dict[str, Binding]] = TypeAdapter(dict[str, Binding])


@dataclass(frozen=True)
class PhaseView:
    row: Phase
    progress: Progress


@dataclass(frozen=True)
class PlanView:
    row: Plan
    phases: list[PhaseView]
    allowed_events: tuple[Event, ...] = field(default=())

    @property
    def spec(self) -> PlanSpec:
        return PlanSpec.model_validate(self.row.spec)


def status_of(plan: Plan, phases: Sequence[Phase]) -> PlanStatus:
    return PlanStatus(
        state=PlanState(plan.state),
        version=plan.version,
        phases=tuple(
            PhaseStatus(key=p.key, state=PhaseState(p.state), gate=Gate(p.gate)) for p in phases
        ),
        rollback_target=plan.rollback_target,
    )


def _bindings_used(spec: PlanSpec) -> dict[str, set[str]]:
    """Binding name -> field paths that use it, for a clear error when one is not bound."""
    used: dict[str, set[str]] = {}

    def note(ref: PrincipalRef | MailboxRef | None, path: str) -> None:
        if ref is not None and ref.binding:
            used.setdefault(ref.binding, set()).add(path)

    for p_index, phase in enumerate(spec.phases):
        for s_index, step in enumerate(phase.steps):
            path = f"spec.phases[{p_index}].steps[{s_index}]"
            if isinstance(step, ConvertCohortStep) and step.cohort.binding:
                used.setdefault(step.cohort.binding, set()).add(f"{path}.cohort.binding")
            elif isinstance(step, RequireApprovalStep):
                for r_index, rule in enumerate(step.rules):
                    for a_index, ref in enumerate(rule.approvers):
                        note(ref, f"{path}.rules[{r_index}].approvers[{a_index}]")
            elif isinstance(step, CreateAccessReviewsStep):
                note(step.reviewers, f"{path}.reviewers")
            elif isinstance(step, SetNotificationRulesStep):
                for m_index, mailbox in enumerate(step.recipients):
                    note(mailbox, f"{path}.recipients[{m_index}]")
    return used


def effective_bindings(tenant: Tenant, overrides: Mapping[str, Any]) -> dict[str, Binding]:
    merged = dict(tenant.bindings)
    merged.update(overrides)
    return _BINDINGS_ADAPTER.validate_python(merged)


def _check_bindings(spec: PlanSpec, bindings: Mapping[str, Binding]) -> list[tuple[str, str]]:
    problems = []
    for name, paths in sorted(_bindings_used(spec).items()):
        if name not in bindings:
            for path in sorted(paths):
                problems.append((path, f"binding {name!r} is not bound for this tenant"))
            continue
        kind = bindings[name].kind
        for path in sorted(paths):
            if ".recipients[" in path:
                if kind != "mailbox":
                    problems.append(
                        (path, f"binding {name!r} is a {kind} binding, not a mailbox binding")
                    )
                continue
            if kind == "mailbox":
                problems.append(
                    (path, f"binding {name!r} names mailboxes, not directory users or groups")
                )
            elif path.endswith("reviewers") and kind == "group":
                continue
            elif not path.endswith("reviewers") and kind == "role_owners":
                problems.append((path, f"binding {name!r} names role owners, not a group or users"))
    return problems


def create_plan(
    session: Session,
    *,
    tenant_id: str,
    plans_dir: Path | None,
    template: str | None,
    spec_data: Mapping[str, Any] | None,
    name: str | None,
    binding_overrides: Mapping[str, Any],
    actor: str,
    now: datetime,
) -> PlanView:
    tenant = get_tenant(session, tenant_id)
    if (template is None) == (spec_data is None):
        raise InvalidInputError(
            "give either a template name or an inline spec",
            [("template", "give exactly one of template or spec")],
        )
    if template is not None:
        try:
            spec = load_template(plans_dir, template)
        except NotFoundError as exc:
            raise InvalidInputError(exc.detail, [("template", exc.detail)]) from None
    else:
        try:
            spec = parse_plan(spec_data)
        except PlanInvalidError as exc:
            raise InvalidInputError(
                "the plan spec is invalid", [(f"spec.{p.path}", p.message) for p in exc.problems]
            ) from None
    try:
        overrides = _BINDINGS_ADAPTER.validate_python(dict(binding_overrides))
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, prefix="bindings")
        raise InvalidInputError(
            "invalid binding overrides", [(p.path, p.message) for p in problems]
        ) from None
    bindings = effective_bindings(
        tenant, {k: v.model_dump(mode="json") for k, v in overrides.items()}
    )
    unbound = _check_bindings(spec, bindings)
    if unbound:
        raise InvalidInputError("the plan uses bindings this tenant does not have", unbound)

    plan_id = str(uuid.uuid4())
    plan = Plan(
        id=plan_id,
        tenant_id=tenant.id,
        name=(name or f"{spec.name} for {tenant.name}").strip()[:200],
        template=template,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.spec_hash(),
        binding_overrides={k: v.model_dump(mode="json") for k, v in overrides.items()},
        state=PlanState.draft.value,
        version=1,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    phases = [
        Phase(
            plan_id=plan_id,
            position=index,
            key=phase.key,
            title=phase.title,
            gate=phase.gate.value,
            state=PhaseState.pending.value,
        )
        for index, phase in enumerate(spec.phases)
    ]
    repo = PlanRepository(session)
    repo.add(plan, phases)
    repo.add_transition(
        Transition(
            plan_id=plan_id,
            version=1,
            event="create",
            from_state=PlanState.draft.value,
            to_state=PlanState.draft.value,
            actor=actor,
            reason=f"created from template {template!r}"
            if template
            else "created from an inline spec",
            at=now,
        )
    )
    session.flush()
    return get_plan_view(session, plan_id)


def get_plan_row(session: Session, plan_id: str, *, for_update: bool = False) -> Plan:
    repo = PlanRepository(session)
    plan = repo.get_for_update(plan_id) if for_update else repo.get(plan_id)
    if plan is None:
        raise NotFoundError(f"no plan with id {plan_id}")
    return plan


def _views(session: Session, plans: Sequence[Plan]) -> list[PlanView]:
    repo = PlanRepository(session)
    ids = [p.id for p in plans]
    phases = repo.phases_for(ids)
    counts = repo.progress(ids)
    views = []
    for plan in plans:
        plan_phases = phases.get(plan.id, [])
        views.append(
            PlanView(
                row=plan,
                phases=[
                    PhaseView(p, progress_from_counts(counts.get((plan.id, p.key), {})))
                    for p in plan_phases
                ],
                allowed_events=machine.allowed_events(status_of(plan, plan_phases)),
            )
        )
    return views


def get_plan_view(session: Session, plan_id: str) -> PlanView:
    return _views(session, [get_plan_row(session, plan_id)])[0]


def list_plan_views(
    session: Session, *, tenant_id: str | None = None, states: Sequence[str] | None = None
) -> list[PlanView]:
    return _views(session, PlanRepository(session).list_plans(tenant_id=tenant_id, states=states))


def history(session: Session, plan_id: str) -> Sequence[Transition]:
    get_plan_row(session, plan_id)
    return PlanRepository(session).history(plan_id)


def apply_event(
    session: Session,
    *,
    plan: Plan,
    event: Event,
    actor: str,
    reason: str | None,
    now: datetime,
    phase_key: str | None = None,
    expected_version: int | None = None,
    details: dict[str, Any] | None = None,
    phase_reason: str | None = None,
) -> machine.Transition:
    """Move ``plan`` by ``event`` and record it; raises 409 problems on stale or refused."""
    if expected_version is not None and expected_version != plan.version:
        raise StaleVersionError(
            f"expected version {expected_version} but the plan is at version {plan.version}",
            current_version=plan.version,
            current_state=plan.state,
        )
    repo = PlanRepository(session)
    phases = repo.phases(plan.id)
    outcome = machine.apply(status_of(plan, phases), event, phase_key=phase_key)
    if isinstance(outcome, machine.Refusal):
        extra: dict[str, Any] = {
            "current_state": outcome.current_state.value,
            "allowed_events": [e.value for e in outcome.allowed_events],
            "current_version": plan.version,
        }
        if outcome.phase_key:
            extra["phase"] = outcome.phase_key
            extra["phase_state"] = outcome.phase_state.value if outcome.phase_state else None
        raise TransitionRefusedError(outcome.reason, **extra)
    record_transition(
        session,
        plan=plan,
        phases=phases,
        transition=outcome,
        actor=actor,
        reason=reason,
        now=now,
        details=details,
        phase_reason=phase_reason,
    )
    return outcome


def record_transition(
    session: Session,
    *,
    plan: Plan,
    phases: Sequence[Phase],
    transition: machine.Transition,
    actor: str,
    reason: str | None,
    now: datetime,
    details: dict[str, Any] | None = None,
    phase_reason: str | None = None,
) -> None:
    """Persist a transition: compare-and-set the version, update phases, append history."""
    spec = PlanSpec.model_validate(plan.spec)
    fields: dict[str, Any] = {"rollback_target": transition.status.rollback_target}
    if transition.event is Event.start:
        fields["started_at"] = now
        for phase in phases:
            phase_spec = spec.phase(phase.key)
            if phase_spec is not None:
                phase.due_at = now + phase_spec.starts_after
    if transition.to_state in machine.FINISHED_PLAN_STATES:
        fields["finished_at"] = now
    # A failed plan says why on the plan itself; any later move starts from a clean slate.
    fields["status_reason"] = reason if transition.to_state is PlanState.failed else None
    moved = PlanRepository(session).compare_and_set_version(
        plan.id,
        expected=plan.version,
        new_version=transition.version,
        state=transition.to_state.value,
        at=now,
        **fields,
    )
    if not moved:
        raise StaleVersionError(
            "the plan changed while this action was being applied; read it again",
            current_state=plan.state,
        )
    by_key = {p.key: p for p in phases}
    for change in transition.phase_changes:
        phase = by_key[change.key]
        phase.state = change.to_state.value
        phase.status_reason = phase_reason
        if change.to_state is PhaseState.running and change.from_state is not PhaseState.failed:
            phase.started_at = phase.started_at or now
        if change.to_state in {PhaseState.completed, PhaseState.failed, PhaseState.rolled_back}:
            phase.finished_at = now
        if change.to_state is PhaseState.running:
            phase.finished_at = None
        session.add(phase)
    for phase in phases:
        session.add(phase)
    first = transition.phase_changes[0] if transition.phase_changes else None
    PlanRepository(session).add_transition(
        Transition(
            plan_id=plan.id,
            version=transition.version,
            event=transition.event.value,
            from_state=transition.from_state.value,
            to_state=transition.to_state.value,
            phase_key=first.key if first else None,
            phase_from=first.from_state.value if first else None,
            phase_to=first.to_state.value if first else None,
            actor=actor,
            reason=reason,
            details=details,
            at=now,
        )
    )
    session.flush()
    session.refresh(plan)


def perform_action(
    session: Session,
    *,
    plan_id: str,
    event: Event,
    actor: str,
    reason: str | None,
    now: datetime,
    phase_key: str | None = None,
    expected_version: int | None = None,
    details: dict[str, Any] | None = None,
) -> PlanView:
    """An operator action; ``start`` also moves a plan whose first phase is due now to running."""
    plan = get_plan_row(session, plan_id, for_update=True)
    apply_event(
        session,
        plan=plan,
        event=event,
        actor=actor,
        reason=reason,
        now=now,
        phase_key=phase_key,
        expected_version=expected_version,
        details=details,
    )
    if event is Event.retry:
        # Retry picks up exactly the items that failed, nothing else.
        for phase in PlanRepository(session).phases(plan.id):
            if phase.state == PhaseState.running.value:
                WorkItemRepository(session).reset_failed(plan.id, phase.key)
    if event is Event.start:
        phases = PlanRepository(session).phases(plan.id)
        if phases and phases[0].due_at is not None and phases[0].due_at <= now:
            apply_event(
                session,
                plan=plan,
                event=Event.tick,
                actor="scheduler",
                reason="the first phase is due now",
                now=now,
            )
    return get_plan_view(session, plan_id)
