"""The scheduler's tick: the database decides what is due; each plan runs under a lease.

APScheduler only wakes us up. Any number of replicas may tick at once: a plan is driven by
whoever holds its lease, and every write is fenced by the lease's token (invariant 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from app.db.models import Phase, Plan, Tenant
from app.db.repos.plans import PlanRepository
from app.domain.machine import Event, Gate, PhaseState, PlanState
from app.domain.plan import HealthGate, PlanSpec
from app.domain.tenant import AutomationSettings, CommsSettings, GraphLimits
from app.domain.windows import progression_window
from app.engine.baseline_diff import standing_access_since_baseline
from app.engine.context import EngineContext, Lease, LeaseLostError, claim_plan, fenced, release
from app.engine.gates import GateCheck, GateEvaluator, GateVerdict
from app.engine.health_gates import monitoring_gates
from app.engine.posture import PostureReadError, Trigger, take_posture
from app.engine.rollback import PhaseUndo
from app.engine.steps import registry  # noqa: F401  (registers every step handler)
from app.engine.steps.base import StepContext, StepResult, StepStatus, handler_for
from app.graph.errors import GraphCredentialError, GraphError
from app.logging import get_logger
from app.problems import ConflictError, TenantCredentialError
from app.services.plans import apply_event, effective_bindings, get_plan_row
from app.services.tenants import credential_problem

log = get_logger(__name__)

ACTIVE_STATES = (PlanState.scheduled.value, PlanState.running.value, PlanState.rolling_back.value)
MAX_MOVES_PER_TICK = 50
SHOWN_NEW_ACCESS = 5
"""How many assignments made outside the plan the final rollback reason names."""


async def tick(ectx: EngineContext, *, gates: GateEvaluator = monitoring_gates) -> None:
    """Drive every active plan one step further (as far as it can go now)."""
    plan_ids = await ectx.db.read(
        lambda session: list(
            session.exec(select(Plan.id).where(col(Plan.state).in_(ACTIVE_STATES))).all()
        )
    )
    for plan_id in plan_ids:
        await drive_plan(ectx, plan_id, gates=gates)


async def drive_plan(
    ectx: EngineContext, plan_id: str, *, gates: GateEvaluator = monitoring_gates
) -> None:
    lease = await claim_plan(ectx, plan_id)
    if lease is None:
        return
    with structlog.contextvars.bound_contextvars(plan_id=plan_id, worker=ectx.worker_id):
        try:
            await PlanDriver(ectx, lease, plan_id, gates).run()
        except LeaseLostError as exc:
            log.warning("engine.lease_lost", reason=str(exc))
            return
        except (TenantCredentialError, GraphCredentialError) as exc:
            # The tenant's configuration, not the plan's: nothing is marked failed, no item
            # spends an attempt; the plan says why it waits and carries on once it is fixed.
            problem = (
                exc
                if isinstance(exc, TenantCredentialError)
                else await _tenant_problem(ectx, plan_id, exc)
            )
            log.warning("engine.tenant_credential_failed", detail=problem.detail)
            await _note_waiting(ectx, lease, plan_id, problem.detail)
        except GraphError as exc:
            # Outside a step (getting a token, say): Graph or the sign-in endpoint is out of
            # reach for now, which fails nothing; the next tick tries again.
            log.warning("engine.graph_unavailable", error=str(exc))
            await _note_waiting(
                ectx, lease, plan_id, f"waiting for Microsoft Graph ({exc}); trying again"
            )
        except Exception as exc:  # the tick boundary: log, leave a trace in the data, keep going
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                # A failover, or PostgreSQL ending this process's session after it stalled in a
                # transaction: that unit of work rolled back whole, as after a crash, and the
                # next tick resumes from what the data says.
                log.warning("engine.database_connection_lost", error=str(exc.orig))
                return
            log.error("engine.plan_error", error=type(exc).__name__, detail=str(exc), exc_info=exc)
            await _fail_running_phase(
                ectx, lease, plan_id, f"internal error: {type(exc).__name__}: {exc}"
            )
        finally:
            try:
                await release(ectx, lease)
            except Exception as exc:  # pragma: no cover - the lease lapses on its own anyway
                log.warning("engine.lease_release_failed", error=str(exc))


async def _fail_running_phase(ectx: EngineContext, lease: Lease, plan_id: str, reason: str) -> None:
    now = ectx.clock.now()

    def record(session: Session) -> None:
        plan = get_plan_row(session, plan_id, for_update=True)
        phases = PlanRepository(session).phases(plan_id)
        running = next((p for p in phases if p.state == PhaseState.running.value), None)
        if plan.state == PlanState.running.value and running is not None:
            apply_event(
                session,
                plan=plan,
                event=Event.fail,
                actor=_actor(ectx),
                reason=reason,
                now=now,
                phase_key=running.key,
                phase_reason=reason,
            )
        else:
            plan.status_reason = reason
            session.add(plan)

    try:
        await fenced(ectx, lease, record)
    except Exception as exc:  # pragma: no cover
        log.error("engine.record_failure_failed", error=str(exc))


async def _tenant_problem(
    ectx: EngineContext, plan_id: str, exc: GraphCredentialError
) -> TenantCredentialError:
    def load(session: Session) -> Tenant | None:
        return session.get(Tenant, get_plan_row(session, plan_id).tenant_id)

    tenant = await ectx.db.read(load)
    if tenant is None:  # pragma: no cover - a plan's tenant is never deleted
        return TenantCredentialError(f"{exc.reason}. To fix: {exc.fix}")
    return credential_problem(tenant, exc)


async def _note_waiting(ectx: EngineContext, lease: Lease, plan_id: str, reason: str) -> None:
    """Why the plan cannot go on: on its running phase, else on the plan (no transition; the
    next step's or transition's own reason replaces it once it can)."""

    def note(session: Session) -> None:
        rows: list[Plan | Phase] = [
            p
            for p in PlanRepository(session).phases(plan_id)
            if p.state == PhaseState.running.value
        ]
        if not rows:
            rows.append(get_plan_row(session, plan_id))
        for row in rows:
            row.status_reason = reason
            session.add(row)

    try:
        await fenced(ectx, lease, note)
    except Exception as exc:  # pragma: no cover
        log.error("engine.record_failure_failed", error=str(exc))


def _record_step_done(plan_id: str, phase_key: str, index: int, session: Session) -> None:
    row = session.exec(select(Phase).where(Phase.plan_id == plan_id, Phase.key == phase_key)).one()
    row.current_step = index + 1
    session.add(row)


def _actor(ectx: EngineContext) -> str:
    return f"scheduler ({ectx.worker_id})"


class PlanDriver:
    def __init__(
        self, ectx: EngineContext, lease: Lease, plan_id: str, gates: GateEvaluator
    ) -> None:
        self.ectx = ectx
        self.lease = lease
        self.plan_id = plan_id
        self.gates = gates

    async def _load(self) -> tuple[Plan, list[Phase], Tenant]:
        def load(session: Session) -> tuple[Plan, list[Phase], Tenant]:
            plan = get_plan_row(session, self.plan_id)
            phases = list(PlanRepository(session).phases(self.plan_id))
            tenant = session.get(Tenant, plan.tenant_id)
            assert tenant is not None
            return plan, phases, tenant

        return await self.ectx.db.read(load)

    async def _move(
        self,
        event: Event,
        *,
        phase_key: str | None = None,
        reason: str | None = None,
        phase_reason: str | None = None,
    ) -> bool:
        """Record a transition under the lease; False if the plan moved meanwhile (an operator)."""
        now = self.ectx.clock.now()

        def move(session: Session) -> None:
            plan = get_plan_row(session, self.plan_id, for_update=True)
            apply_event(
                session,
                plan=plan,
                event=event,
                actor=_actor(self.ectx),
                reason=reason,
                now=now,
                phase_key=phase_key,
                phase_reason=phase_reason,
            )

        try:
            await fenced(self.ectx, self.lease, move)
        except ConflictError as exc:
            log.info("engine.transition_skipped", plan_event=event.value, detail=exc.detail)
            return False
        log.info("engine.transition", plan_event=event.value, phase=phase_key, reason=reason)
        return True

    async def _note(self, *, phase_key: str | None, reason: str | None) -> None:
        """Say why a phase or plan is waiting, without a transition."""

        def note(session: Session) -> None:
            if phase_key is None:
                plan = session.get(Plan, self.plan_id)
                if plan is not None and plan.status_reason != reason:
                    plan.status_reason = reason
                    session.add(plan)
                return
            phase = session.exec(
                select(Phase).where(Phase.plan_id == self.plan_id, Phase.key == phase_key)
            ).first()
            if phase is not None and phase.status_reason != reason:
                phase.status_reason = reason
                session.add(phase)

        await fenced(self.ectx, self.lease, note)

    async def run(self) -> None:
        for _ in range(MAX_MOVES_PER_TICK):
            plan, phases, tenant = await self._load()
            now = self.ectx.clock.now()
            if plan.state == PlanState.scheduled.value:
                first_due = phases[0].due_at if phases else None
                if (
                    first_due is not None
                    and first_due <= now
                    and await self._move(Event.tick, reason="the first phase is due")
                ):
                    continue
                return
            if plan.state == PlanState.rolling_back.value:
                await self._roll_back(plan, phases, tenant)
                return
            if plan.state != PlanState.running.value:
                return
            current = next(
                (
                    p
                    for p in phases
                    if p.state not in {PhaseState.completed.value, PhaseState.rolled_back.value}
                ),
                None,
            )
            if current is None:
                return
            moved = await self._advance_phase(plan, current, tenant)
            if not moved:
                return

    async def _advance_phase(self, plan: Plan, phase: Phase, tenant: Tenant) -> bool:
        now = self.ectx.clock.now()
        spec = PlanSpec.model_validate(plan.spec)
        phase_spec = spec.phase(phase.key)
        assert phase_spec is not None
        automation = AutomationSettings.model_validate(tenant.automation)
        state = PhaseState(phase.state)
        if state is PhaseState.pending:
            if phase.due_at is not None and phase.due_at <= now:
                return await self._move(
                    Event.become_due, phase_key=phase.key, reason="its start time has come"
                )
            return False
        if state is PhaseState.due:
            if Gate(phase.gate) is Gate.manual:
                return await self._move(
                    Event.hold,
                    phase_key=phase.key,
                    phase_reason="waiting for an operator to advance (manual gate)",
                )
            verdict = await self._gates(tenant.id, phase_spec.health_gates, now)
            if not verdict.passed:
                return await self._move(
                    Event.hold,
                    phase_key=phase.key,
                    phase_reason="health gate: " + "; ".join(verdict.reasons),
                )
            return await self._begin_if_window(phase, automation, now)
        if state is PhaseState.awaiting_gate:
            if Gate(phase.gate) is Gate.manual:
                return False
            verdict = await self._gates(tenant.id, phase_spec.health_gates, now)
            if not verdict.passed:
                await self._note(
                    phase_key=phase.key, reason="health gate: " + "; ".join(verdict.reasons)
                )
                return False
            return await self._begin_if_window(phase, automation, now)
        if state is PhaseState.running:
            if automation.frozen:
                await self._note(phase_key=phase.key, reason="held: the tenant is frozen")
                return False
            result = await self._run_steps(plan, phase, tenant, spec)
            if result.status is StepStatus.done:
                finished = await self._move(
                    Event.finish, phase_key=phase.key, phase_reason=result.reason
                )
                if finished:
                    await self._record_posture(plan, tenant, "phase_completed", phase.key)
                return finished
            if result.status is StepStatus.failed:
                await self._move(
                    Event.fail,
                    phase_key=phase.key,
                    reason=result.reason,
                    phase_reason=result.reason,
                )
                return False
            await self._note(phase_key=phase.key, reason=result.reason)
            return False
        return False

    async def _begin_if_window(
        self, phase: Phase, automation: AutomationSettings, now: datetime
    ) -> bool:
        window = progression_window(automation, now)
        if not window.open:
            await self._note(phase_key=phase.key, reason=window.reason)
            return False
        return await self._move(Event.begin, phase_key=phase.key, reason="automatic progression")

    async def _gates(
        self, tenant_id: str, gates: Sequence[HealthGate], now: datetime
    ) -> GateVerdict:
        return await self.gates(self.ectx, GateCheck(tenant_id, self.plan_id, gates, now))

    async def _run_steps(
        self, plan: Plan, phase: Phase, tenant: Tenant, spec: PlanSpec
    ) -> StepResult:
        phase_spec = spec.phase(phase.key)
        assert phase_spec is not None
        client = await self.ectx.client_for(tenant)
        bindings = effective_bindings(tenant, plan.binding_overrides)
        notes: list[str] = []
        for index in range(phase.current_step, len(phase_spec.steps)):
            step = phase_spec.steps[index]
            sc = StepContext(
                engine=self.ectx,
                lease=self.lease,
                plan_id=plan.id,
                plan_name=plan.name,
                spec=spec,
                phase=phase_spec,
                step_index=index,
                step=step,
                tenant_id=tenant.id,
                bindings=bindings,
                break_glass=frozenset(tenant.break_glass_ids),
                comms=CommsSettings.model_validate(tenant.comms),
                limits=GraphLimits.model_validate(tenant.graph_limits),
                client=client,
                notes=notes,
            )
            with structlog.contextvars.bound_contextvars(
                phase=phase.key, step=index, kind=step.kind
            ):
                try:
                    result = await handler_for(step.kind).run(sc)
                except (LeaseLostError, GraphCredentialError):
                    raise
                except GraphError as exc:
                    result = StepResult.failed(f"step {index} ({step.kind}): Graph: {exc}")
            if result.status is not StepStatus.done:
                return result
            if result.reason:
                notes.append(result.reason)
            await fenced(
                self.ectx, self.lease, partial(_record_step_done, plan.id, phase.key, index)
            )
        return StepResult.done("; ".join(notes) or None)

    async def _roll_back(self, plan: Plan, phases: list[Phase], tenant: Tenant) -> None:
        client = await self.ectx.client_for(tenant)
        limits = GraphLimits.model_validate(tenant.graph_limits)
        target = plan.rollback_target
        undo_order: list[Phase] = []
        for phase in reversed(phases):
            if phase.state in {
                PhaseState.running.value,
                PhaseState.completed.value,
                PhaseState.failed.value,
            }:
                undo_order.append(phase)
            if target is not None and phase.key == target:
                break
        drift: list[str] = []
        for phase in undo_order:
            result = await PhaseUndo(
                self.ectx,
                self.lease,
                client,
                plan_id=plan.id,
                phase_key=phase.key,
                min_change_interval=timedelta(seconds=limits.min_change_interval_seconds),
                concurrency=limits.max_concurrency,
            ).run()
            drift += result.drift
            if result.failed:
                await self._move(
                    Event.rollback_failed, reason=f"rollback of {phase.key} failed: {result.failed}"
                )
                return
            if not result.done:
                await self._note(phase_key=None, reason=result.waiting)
                return
            reason = "rolled back" + (
                f"; drift left alone: {'; '.join(result.drift)}" if result.drift else ""
            )
            if not await self._move(
                Event.roll_back_phase, phase_key=phase.key, phase_reason=reason
            ):
                return
        final = Event.partial_rollback_finished if target is not None else Event.rollback_finished
        unexplained = ""
        if target is None:
            try:
                added = await standing_access_since_baseline(
                    self.ectx, client, plan, limit=limits.max_concurrency
                )
            except GraphCredentialError:
                raise
            except GraphError as exc:
                added = []
                unexplained = f"; could not check for standing access added since: {exc}"
            drift += added
            if added:
                shown = "; ".join(added[:SHOWN_NEW_ACCESS])
                more = len(added) - SHOWN_NEW_ACCESS
                unexplained = f"; not in the baseline: {shown}" + (
                    f"; and {more} more" if more > 0 else ""
                )
        if await self._move(
            final,
            reason="rollback finished"
            + (f" (drift left alone: {len(drift)})" if drift else "")
            + unexplained,
        ):
            await self._record_posture(plan, tenant, "rolled_back", target)
        await self._note(phase_key=None, reason=None)

    async def _record_posture(
        self, plan: Plan, tenant: Tenant, trigger: Trigger, phase_key: str | None
    ) -> None:
        """The plan's posture report after a phase (or the rollback); an observation, so a
        tenant that cannot be read for it is logged and the plan goes on."""
        try:
            await take_posture(
                self.ectx,
                tenant,
                plan=plan,
                trigger=trigger,
                phase_key=phase_key,
                actor=_actor(self.ectx),
            )
        except PostureReadError as exc:
            log.warning("engine.posture.failed", trigger=trigger, phase=phase_key, error=str(exc))
