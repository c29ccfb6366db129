"""Tenant reports: activation signals, drift and the MS.AAD.7 posture; collecting and taking
them on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.auth import RequireOperator, RequireViewer
from app.api.deps import ContextDep, DatabaseDep
from app.api.jobs import JOB_RESPONSES, JobsDep, answer_with_job
from app.api.prefer import PreferHeader, wait_preference
from app.api.problem_docs import AUTHENTICATED, problems
from app.engine.jobs import JobProgress
from app.engine.monitoring import collect_now
from app.engine.posture import PostureReadError, take_posture
from app.problems import ConflictError, UnavailableError
from app.services.monitoring.collect import CollectionError
from app.services.monitoring.reports import (
    DEFAULT_PERIOD,
    ActivationReport,
    DriftReport,
    activation_report,
    drift_report,
)
from app.services.posture import latest_tenant_report, posture_csv, report_json
from app.services.tenants import get_tenant

router = APIRouter(prefix="/api/v1/tenants", tags=["reports"], responses=AUTHENTICATED)


@router.get(
    "/{tenant_id}/reports/activations", response_model=ActivationReport, responses=problems(404)
)
def activations(
    tenant_id: str,
    db: DatabaseDep,
    ctx: ContextDep,
    caller: RequireViewer,
    role: Annotated[
        str | None,
        Query(max_length=200, description="a role template id, or a role's name"),
    ] = None,
    period: Annotated[
        str,
        Query(
            max_length=16,
            description="ISO-8601 weeks/days back from now (P1D..P366D), widened to whole "
            "weeks starting Monday 00:00 UTC",
        ),
    ] = DEFAULT_PERIOD,
) -> ActivationReport:
    """Activation signals per role and per week, each with its underlying counts."""
    with db.reading() as session:
        return activation_report(
            session,
            tenant_id=tenant_id,
            period=period,
            role=role,
            now=ctx.clock.now(),
            settings=ctx.settings.monitoring,
        )


@router.get("/{tenant_id}/reports/drift", response_model=DriftReport, responses=problems(404))
def drift(tenant_id: str, db: DatabaseDep, ctx: ContextDep, caller: RequireViewer) -> DriftReport:
    """Standing access that came back after conversion, and the standing Global Administrators."""
    with db.reading() as session:
        return drift_report(
            session, tenant_id=tenant_id, now=ctx.clock.now(), settings=ctx.settings.monitoring
        )


@router.post(
    "/{tenant_id}/reports/collect",
    response_model=None,
    responses={**JOB_RESPONSES, **problems(400, 404, 409, 424, 503)},
)
async def collect(
    tenant_id: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    prefer: PreferHeader = None,
) -> Response:
    """Collect the tenant's PIM activity now (the scheduler does it every few minutes)."""
    tenant = await ctx.db.read(lambda session: get_tenant(session, tenant_id))

    async def work(progress: JobProgress) -> dict[str, Any]:
        progress("collecting")
        try:
            result = await collect_now(jobs.ectx, tenant, ctx.settings.monitoring)
        except CollectionError as exc:
            raise UnavailableError(f"collecting from Graph failed: {exc}") from None
        if result is None:
            raise ConflictError("another worker is collecting this tenant's activity right now")
        return dict(jsonable_encoder(result))

    return await answer_with_job(
        jobs,
        wait_preference(prefer),
        kind="collect",
        tenant_id=tenant_id,
        plan_id=None,
        actor=caller.actor,
        work=work,
        render=JSONResponse,
    )


def _posture_response(report: dict[str, Any], accept: str | None, status_code: int) -> Response:
    if accept and "text/csv" in accept.lower():
        name = f"tenant-{report['tenant_id']}-posture-{report['id']}.csv"
        return Response(
            posture_csv(report),
            media_type="text/csv",
            status_code=status_code,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return JSONResponse(jsonable_encoder(report), status_code=status_code)


@router.get("/{tenant_id}/reports/posture", response_model=None)
def posture(
    tenant_id: str,
    db: DatabaseDep,
    caller: RequireViewer,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """CISA SCuBA MS.AAD.7 posture as last taken: one row per policy (pass, fail or not
    applicable) with its evidence and what the tenant's plan does about it. CSV when
    ``Accept: text/csv``."""
    with db.reading() as session:
        report = latest_tenant_report(session, tenant_id)
    return _posture_response(report, accept, 200)


@router.post(
    "/{tenant_id}/reports/posture",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    responses=JOB_RESPONSES,
)
async def take_posture_now(
    tenant_id: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    accept: Annotated[str | None, Header()] = None,
    prefer: PreferHeader = None,
) -> Response:
    """Read the tenant now and record its MS.AAD.7 posture (a job: see ``Prefer``)."""
    tenant = await ctx.db.read(lambda session: get_tenant(session, tenant_id))

    async def work(progress: JobProgress) -> dict[str, Any]:
        try:
            (report,) = await take_posture(jobs.ectx, tenant, actor=caller.actor, progress=progress)
        except PostureReadError as exc:
            raise UnavailableError(str(exc)) from None
        return report_json(report)

    return await answer_with_job(
        jobs,
        wait_preference(prefer),
        kind="posture",
        tenant_id=tenant_id,
        plan_id=None,
        actor=caller.actor,
        work=work,
        render=lambda result: _posture_response(result, accept, 201),
    )
