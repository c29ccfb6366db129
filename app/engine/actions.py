"""Operator actions that need Graph: start (preflight, then the baseline), preflight on its own."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.db.models import Plan, Tenant, Transition
from app.db.repos.plans import PlanRepository
from app.domain import machine
from app.domain.machine import Event, PlanStatus
from app.engine.context import EngineContext
from app.engine.inventory import InventoryError, ProgressReport, take_inventory
from app.engine.posture import PostureReadError, take_posture
from app.engine.preflight import PreflightReport, run_preflight
from app.logging import get_logger
from app.problems import (
    NotFoundError,
    PreflightFailedError,
    StaleVersionError,
    TransitionRefusedError,
    UnavailableError,
)
from app.services.plans import PlanView, get_plan_row, perform_action, status_of

log = get_logger(__name__)


async def _load(ectx: EngineContext, plan_id: str) -> tuple[Plan, Tenant, PlanStatus]:
    def load(session: Session) -> tuple[Plan, Tenant, PlanStatus]:
        plan = get_plan_row(session, plan_id)
        tenant = session.get(Tenant, plan.tenant_id)
        if tenant is None:
            raise NotFoundError(f"the plan's tenant {plan.tenant_id} no longer exists")
        return plan, tenant, status_of(plan, PlanRepository(session).phases(plan_id))

    return await ectx.db.read(load)


async def _record_preflight(
    ectx: EngineContext, plan_id: str, report: PreflightReport, actor: str
) -> None:
    """Preflight verdicts go into the plan's history as a note at the current version."""

    def record(session: Session) -> None:
        plan = get_plan_row(session, plan_id)
        plan.preflight = report.to_json()
        session.add(plan)
        PlanRepository(session).add_transition(
            Transition(
                plan_id=plan_id,
                version=plan.version,
                event="preflight",
                from_state=plan.state,
                to_state=plan.state,
                actor=actor,
                reason="passed"
                if report.passed
                else "failed: " + "; ".join(c.detail for c in report.failures()),
                details=report.to_json(),
                at=report.at,
            )
        )

    await ectx.db.write(record)


async def preflight(ectx: EngineContext, *, plan_id: str, actor: str) -> PreflightReport:
    plan, tenant, _ = await _load(ectx, plan_id)
    report = await run_preflight(ectx, tenant=tenant, plan=plan)
    await _record_preflight(ectx, plan_id, report, actor)
    return report


async def start(
    ectx: EngineContext,
    *,
    plan_id: str,
    actor: str,
    reason: str | None,
    expected_version: int | None,
    progress: ProgressReport | None = None,
) -> PlanView:
    """Preflight, then the baseline, then ``start``; a failed preflight refuses and says why."""
    plan, tenant, status = await _load(ectx, plan_id)
    if expected_version is not None and expected_version != plan.version:
        raise StaleVersionError(
            f"expected version {expected_version} but the plan is at version {plan.version}",
            current_version=plan.version,
            current_state=plan.state,
        )
    outcome = machine.apply(status, Event.start)
    if isinstance(outcome, machine.Refusal):
        raise TransitionRefusedError(
            outcome.reason,
            current_state=outcome.current_state.value,
            allowed_events=[e.value for e in outcome.allowed_events],
            current_version=plan.version,
        )
    if progress is not None:
        progress("preflight", 0, 0)
    report = await run_preflight(ectx, tenant=tenant, plan=plan)
    await _record_preflight(ectx, plan_id, report, actor)
    if not report.passed:
        raise PreflightFailedError(
            "preflight failed: " + "; ".join(c.detail for c in report.failures()),
            checks=[c.__dict__ for c in report.checks],
            current_state=plan.state,
        )
    try:
        snapshot = await take_inventory(ectx, tenant, plan_id=plan_id, progress=progress)
    except InventoryError as exc:
        raise UnavailableError(str(exc)) from None
    details: dict[str, Any] = {
        "preflight": report.to_json(),
        "baseline_snapshot_id": snapshot.id,
        "baseline_items": snapshot.item_count,
    }
    # The "before" of the plan's posture report, taken with the baseline; a tenant that cannot
    # be read for it does not stop the start (the report is an observation, not a gate).
    try:
        postures = await take_posture(
            ectx, tenant, plan=plan, trigger="baseline", actor=actor, progress=progress
        )
    except PostureReadError as exc:
        log.warning("engine.posture.failed", plan_id=plan_id, trigger="baseline", error=str(exc))
    else:
        details["baseline_posture_report_ids"] = [p.id for p in postures]
    now = ectx.clock.now()

    def record_start(session: Session) -> PlanView:
        return perform_action(
            session,
            plan_id=plan_id,
            event=Event.start,
            actor=actor,
            reason=reason,
            now=now,
            expected_version=plan.version,
            details=details,
        )

    return await ectx.db.write(record_start)
