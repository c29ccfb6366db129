from __future__ import annotations

from enum import StrEnum
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlmodel import Session

from app.api.auth import RequireOperator, RequireViewer
from app.api.deps import ContextDep, DatabaseDep
from app.api.inventory import inventory_read
from app.api.jobs import JOB_RESPONSES, JobsDep, answer_with_job
from app.api.params import Offset
from app.api.prefer import PreferHeader, wait_preference
from app.api.problem_docs import AUTHENTICATED, problems
from app.api.schemas import HistoryEntry, PlanAction, PlanCreate, PlanRead
from app.db.models import Plan, Tenant
from app.db.repos.inventory import InventoryRepository
from app.db.repos.journal import JournalRepository
from app.domain.machine import Event
from app.engine import actions
from app.engine.jobs import JobProgress
from app.engine.posture import PostureReadError, take_posture
from app.engine.preview import preview_csv_from_json, preview_json, preview_plan
from app.problems import NotFoundError, UnavailableError
from app.services import plans, tenants
from app.services.posture import plan_posture

router = APIRouter(prefix="/api/v1/plans", tags=["plans"], responses=AUTHENTICATED)
GRAPH_JOB = {**JOB_RESPONSES, **problems(400, 404, 409, 424, 503)}
"""A long request that reads the tenant: its job, or the problems it can end with."""


class ActionName(StrEnum):
    start = "start"
    pause = "pause"
    resume = "resume"
    advance = "advance"
    retry = "retry"
    abort = "abort"
    rollback = "rollback"


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=PlanRead, responses=problems(400, 404)
)
def create_plan(
    body: PlanCreate, db: DatabaseDep, ctx: ContextDep, caller: RequireOperator
) -> PlanRead:
    with db.writing() as session:
        view = plans.create_plan(
            session,
            tenant_id=body.tenant_id,
            plans_dir=ctx.settings.plans_dir,
            template=body.template,
            spec_data=body.spec,
            name=body.name,
            binding_overrides=body.bindings,
            actor=caller.actor,
            now=ctx.clock.now(),
        )
    return PlanRead.from_view(view)


@router.get("", response_model=list[PlanRead])
def list_plans(
    db: DatabaseDep,
    caller: RequireViewer,
    tenant_id: str | None = None,
    state: Annotated[list[str] | None, Query()] = None,
) -> list[PlanRead]:
    with db.reading() as session:
        views = plans.list_plan_views(session, tenant_id=tenant_id, states=state)
    return [PlanRead.from_view(v) for v in views]


def _plan_json(session: Session, plan_id: str) -> bytes:
    return PlanRead.from_view(plans.get_plan_view(session, plan_id)).model_dump_json().encode()


@router.get("/{plan_id}", response_model=PlanRead, responses=problems(404))
async def get_plan(plan_id: str, ctx: ContextDep, caller: RequireViewer) -> Response:
    """The plan with its phases and progress. The most polled route: clients asking for the
    same plan at the same moment share one read (``app.db.shared_reads``)."""
    body = await ctx.shared_reads.read(("plan", plan_id), partial(_plan_json, plan_id=plan_id))
    return Response(body, media_type="application/json")


@router.get("/{plan_id}/history", response_model=list[HistoryEntry], responses=problems(404))
def get_history(plan_id: str, db: DatabaseDep, caller: RequireViewer) -> list[HistoryEntry]:
    with db.reading() as session:
        rows = plans.history(session, plan_id)
    return [HistoryEntry.from_row(row) for row in rows]


@router.get("/{plan_id}/operations", responses=problems(404))
def get_operations(
    plan_id: str,
    db: DatabaseDep,
    caller: RequireViewer,
    phase: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    with db.reading() as session:
        plans.get_plan_row(session, plan_id)
        entries = JournalRepository(session).list_for_plan(
            plan_id, phase_key=phase, limit=limit, offset=offset
        )
    return [
        {
            "id": e.id,
            "phase": e.phase_key,
            "step": e.step_index,
            "operation": e.operation,
            "idempotency_key": e.idempotency_key,
            "status": e.status,
            "target": e.target,
            "prior_state": e.prior_state,
            "desired_state": e.desired_state,
            "outcome": e.outcome,
            "graph_request_id": e.graph_request_id,
            "error_code": e.error_code,
            "error_message": e.error_message,
            "reverses": e.reverses_id,
            "intent_at": e.intent_at,
            "completed_at": e.completed_at,
        }
        for e in entries
    ]


async def _plan_and_tenant(ctx: ContextDep, plan_id: str) -> tuple[Plan, Tenant]:
    def load(session: Session) -> tuple[Plan, Tenant]:
        plan = plans.get_plan_row(session, plan_id)
        return plan, tenants.get_tenant(session, plan.tenant_id)

    return await ctx.db.read(load)


@router.post("/{plan_id}/preflight", response_model=None, responses=GRAPH_JOB)
async def run_preflight(
    plan_id: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    prefer: PreferHeader = None,
) -> Response:
    """Run the preflight checks now and record them in the history; changes no state."""
    plan, _ = await _plan_and_tenant(ctx, plan_id)

    async def work(_progress: JobProgress) -> dict[str, Any]:
        report = await actions.preflight(jobs.ectx, plan_id=plan_id, actor=caller.actor)
        return report.to_json()

    return await answer_with_job(
        jobs,
        wait_preference(prefer),
        kind="preflight",
        tenant_id=plan.tenant_id,
        plan_id=plan_id,
        actor=caller.actor,
        work=work,
        render=JSONResponse,
    )


@router.post("/{plan_id}/preview", response_model=None, responses=GRAPH_JOB)
async def preview(
    plan_id: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
    accept: Annotated[str | None, Header()] = None,
    prefer: PreferHeader = None,
) -> Response:
    """Dry run: per phase, exactly what would change. Reads the tenant; writes nothing.

    JSON unless ``format=csv`` or an ``Accept`` header that asks for ``text/csv``. A large
    tenant answers ``202`` with the job; its result is the JSON form.
    """
    if format is None:
        format = "csv" if accept and "text/csv" in accept.lower() else "json"
    plan, tenant = await _plan_and_tenant(ctx, plan_id)

    async def work(progress: JobProgress) -> dict[str, Any]:
        progress("reading the tenant")
        previews = await preview_plan(jobs.ectx, plan=plan, tenant=tenant)
        return {"plan_id": plan_id, "phases": preview_json(previews)}

    def render(result: dict[str, Any]) -> Response:
        if format == "csv":
            return Response(
                preview_csv_from_json(result["phases"]),
                media_type="text/csv",
                headers={
                    "Content-Disposition": f'attachment; filename="plan-{plan_id}-preview.csv"'
                },
            )
        return JSONResponse(result)

    return await answer_with_job(
        jobs,
        wait_preference(prefer),
        kind="preview",
        tenant_id=plan.tenant_id,
        plan_id=plan_id,
        actor=caller.actor,
        work=work,
        render=render,
    )


@router.get("/{plan_id}/preview.csv", response_model=None, responses=GRAPH_JOB)
async def preview_download(
    plan_id: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    prefer: PreferHeader = None,
) -> Response:
    """The dry run as CSV, for sign-off by someone who does not use the tool."""
    return await preview(plan_id, ctx, jobs, caller, format="csv", accept=None, prefer=prefer)


@router.get("/{plan_id}/baseline", responses=problems(404))
def get_baseline(
    plan_id: str,
    db: DatabaseDep,
    caller: RequireViewer,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    with db.reading() as session:
        plan = plans.get_plan_row(session, plan_id)
        snapshot = InventoryRepository(session).latest(plan.tenant_id, plan_id=plan_id)
        if snapshot is None:
            raise NotFoundError(
                f"plan {plan_id} has no baseline yet (it is taken when the plan starts)"
            )
        return inventory_read(session, snapshot, limit=limit, offset=offset)


@router.get("/{plan_id}/posture")
def get_posture(plan_id: str, db: DatabaseDep, caller: RequireViewer) -> dict[str, Any]:
    """The plan's MS.AAD.7 posture in its own scope (its target roles): before (taken with the
    baseline), after each completed phase, after a rollback, and now, side by side."""
    with db.reading() as session:
        return plan_posture(session, plan_id)


@router.post(
    "/{plan_id}/posture",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    responses=JOB_RESPONSES,
)
async def take_posture_now(
    plan_id: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    prefer: PreferHeader = None,
) -> Response:
    """Read the tenant now and record the plan's posture ("now"), and the tenant's with it."""
    plan, tenant = await _plan_and_tenant(ctx, plan_id)

    async def work(progress: JobProgress) -> dict[str, Any]:
        try:
            await take_posture(jobs.ectx, tenant, plan=plan, actor=caller.actor, progress=progress)
        except PostureReadError as exc:
            raise UnavailableError(str(exc)) from None
        return await jobs.ectx.db.read(lambda session: plan_posture(session, plan_id))

    return await answer_with_job(
        jobs,
        wait_preference(prefer),
        kind="posture",
        tenant_id=plan.tenant_id,
        plan_id=plan_id,
        actor=caller.actor,
        work=work,
        render=lambda result: JSONResponse(jsonable_encoder(result), status_code=201),
    )


@router.post("/{plan_id}/{action}", response_model=PlanRead, responses=GRAPH_JOB)
async def act(
    plan_id: str,
    action: ActionName,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    body: Annotated[PlanAction | None, Body()] = None,
    prefer: PreferHeader = None,
) -> Any:
    """Move the plan: start, pause, resume, advance, retry, abort or rollback.

    ``start`` runs the preflight checks first and takes the baseline inventory, as a job: on a
    large tenant it answers ``202`` with the job to poll (see ``Prefer``); a tenant credential
    that gets no Graph token answers ``424`` and the plan stays as it was.
    """
    request = body or PlanAction()
    if action is ActionName.start:
        plan, _ = await _plan_and_tenant(ctx, plan_id)

        async def work(progress: JobProgress) -> dict[str, Any]:
            view = await actions.start(
                jobs.ectx,
                plan_id=plan_id,
                actor=caller.actor,
                reason=request.reason,
                expected_version=request.expected_version,
                progress=progress,
            )
            return PlanRead.from_view(view).model_dump(mode="json")

        return await answer_with_job(
            jobs,
            wait_preference(prefer),
            kind="start",
            tenant_id=plan.tenant_id,
            plan_id=plan_id,
            actor=caller.actor,
            work=work,
            render=JSONResponse,
        )
    now = ctx.clock.now()

    def perform(session: Session) -> plans.PlanView:
        return plans.perform_action(
            session,
            plan_id=plan_id,
            event=Event(action.value),
            actor=caller.actor,
            reason=request.reason,
            now=now,
            phase_key=request.phase,
            expected_version=request.expected_version,
        )

    return PlanRead.from_view(await ctx.db.write(perform))
