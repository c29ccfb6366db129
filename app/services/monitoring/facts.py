"""Stored monitoring rows → the domain's facts (activations, standing assignments, plan scopes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from app.db.models import Plan, Tenant
from app.db.repos.inventory import InventoryRepository
from app.db.repos.monitoring import MonitoringRepository
from app.db.repos.plans import PlanRepository
from app.db.repos.work_items import WorkItemRepository
from app.domain.drift import AssignmentAudit, Conversion, PlanScope, StandingAssignment
from app.domain.machine import PlanState
from app.domain.plan import PlanSpec
from app.domain.progress import WorkItemState
from app.domain.signals import Activation, ActivationFact, DeactivationFact, resolve_activations
from app.graph.models import ScheduleRequestAction
from app.services.monitoring.records import (
    ACTIVATION_EXPIRED,
    APPROVAL_REQUESTED,
    PERMANENT_ADDITIONS,
)

DRIFT_PLAN_STATES = (
    PlanState.running.value,
    PlanState.paused.value,
    PlanState.completed.value,
    PlanState.failed.value,
)
"""Plans whose conversions stand; a plan rolling back restores standing access on purpose."""


@dataclass(frozen=True)
class LoadedActivations:
    activations: list[Activation]
    role_max: dict[str, timedelta | None]


def load_activations(
    session: Session,
    *,
    tenant_id: str,
    since: datetime,
    now: datetime,
    role_ids: Sequence[str] | None,
    renewal_gap: timedelta,
) -> LoadedActivations:
    """Activations requested since ``since`` with what became of them by ``now``."""
    repo = MonitoringRepository(session)
    rows = repo.list_requests(
        tenant_id, since=since, until=now + timedelta(seconds=1), role_ids=role_ids
    )
    hints = repo.list_audits(
        tenant_id, activities=(APPROVAL_REQUESTED, ACTIVATION_EXPIRED), since=since
    )
    approval_requested = {a.request_id for a in hints if a.activity == APPROVAL_REQUESTED}
    expired = {a.request_id for a in hints if a.activity == ACTIVATION_EXPIRED}
    facts: list[ActivationFact] = []
    deactivations: list[DeactivationFact] = []
    role_max: dict[str, timedelta | None] = {}
    for row in rows:
        if row.action == ScheduleRequestAction.self_deactivate.value:
            deactivations.append(
                DeactivationFact(
                    principal_id=row.principal_id,
                    role_definition_id=row.role_definition_id,
                    directory_scope_id=row.directory_scope_id,
                    at=row.requested_at,
                )
            )
            continue
        maximum = (
            timedelta(seconds=row.max_duration_seconds)
            if row.max_duration_seconds is not None
            else None
        )
        if maximum is not None:
            role_max[row.role_definition_id] = maximum  # rows are oldest first: newest wins
        else:
            role_max.setdefault(row.role_definition_id, None)
        facts.append(
            ActivationFact(
                request_id=row.request_id,
                principal_id=row.principal_id,
                principal_name=row.principal_name,
                role_definition_id=row.role_definition_id,
                directory_scope_id=row.directory_scope_id,
                requested_at=row.requested_at,
                status=row.status,
                approval_required=row.approval_required or row.request_id in approval_requested,
                start_at=row.start_at,
                end_at=row.end_at,
                max_duration=maximum,
                justification=row.justification,
                ticket_number=row.ticket_number,
                expired=row.request_id in expired,
            )
        )
    activations = resolve_activations(facts, deactivations, now=now, renewal_gap=renewal_gap)
    return LoadedActivations(activations, role_max)


def standing_assignments(
    session: Session, tenant_id: str, *, role_ids: Sequence[str] | None = None
) -> list[StandingAssignment]:
    return [
        StandingAssignment(
            assignment_id=row.assignment_id,
            principal_id=row.principal_id,
            principal_name=row.principal_name,
            principal_type=row.principal_type,
            role_definition_id=row.role_definition_id,
            directory_scope_id=row.directory_scope_id,
            created_outside_pim=row.created_outside_pim,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
        )
        for row in MonitoringRepository(session).standing_present(tenant_id, role_ids=role_ids)
    ]


def permanent_addition_audits(session: Session, tenant_id: str) -> list[AssignmentAudit]:
    rows = MonitoringRepository(session).list_audits(tenant_id, activities=PERMANENT_ADDITIONS)
    return [
        AssignmentAudit(
            principal_id=row.principal_id,
            role_definition_id=row.role_definition_id,
            at=row.activity_at,
            actor=row.initiated_by,
        )
        for row in rows
        if row.principal_id and row.role_definition_id
    ]


def plan_scope(session: Session, plan: Plan) -> PlanScope | None:
    """What drift is measured against for one plan (None if it never started)."""
    if plan.started_at is None:
        return None
    spec = PlanSpec.model_validate(plan.spec)
    done = WorkItemRepository(session).list_items(plan.id, states=[WorkItemState.done.value])
    conversions = tuple(
        Conversion(
            principal_id=item.principal_id.lower(),
            role_definition_id=item.role_definition_id.lower(),
            directory_scope_id=item.directory_scope_id,
            converted_at=item.updated_at,
        )
        for item in done
    )
    inventory = InventoryRepository(session)
    snapshot = inventory.latest(plan.tenant_id, plan_id=plan.id)
    baseline = None
    if snapshot is not None and snapshot.id is not None:
        baseline = frozenset(
            (i.principal_id.lower(), i.role_definition_id.lower(), i.directory_scope_id)
            for i in inventory.iter_items(snapshot.id)
        )
    return PlanScope(
        plan_id=plan.id,
        plan_name=plan.name,
        started_at=plan.started_at,
        target_roles=frozenset(str(r) for r in spec.role_ids()),
        conversions=conversions,
        baseline=baseline,
    )


def drift_scopes(
    session: Session, tenant: Tenant, *, plan_id: str | None = None
) -> list[PlanScope]:
    plans = PlanRepository(session).list_plans(tenant_id=tenant.id, states=DRIFT_PLAN_STATES)
    scopes = []
    for plan in plans:
        if plan_id is not None and plan.id != plan_id:
            continue
        scope = plan_scope(session, plan)
        if scope is not None:
            scopes.append(scope)
    return scopes


def role_names_of(session: Session, tenant_id: str) -> dict[str, str]:
    """Role names as the tenant's plans spell them (built-in names are the fallback)."""
    names: dict[str, str] = {}
    for plan in PlanRepository(session).list_plans(tenant_id=tenant_id):
        for role in PlanSpec.model_validate(plan.spec).roles:
            if role.name:
                names.setdefault(str(role.id), role.name)
    return names
