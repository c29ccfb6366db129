"""Monitoring reports: activation signals and drift, per tenant; and collecting on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.auth import RequireOperator, RequireViewer
from app.api.deps import ContextDep, DatabaseDep
from app.api.jobs import JOB_RESPONSES, JobsDep, answer_with_job
from app.api.prefer import PreferHeader, wait_preference
from app.engine.jobs import JobProgress
from app.engine.monitoring import collect_now
from app.problems import ConflictError, UnavailableError
from app.services.monitoring.collect import CollectionError
from app.services.monitoring.reports import (
    DEFAULT_PERIOD,
    ActivationReport,
    DriftReport,
    activation_report,
    drift_report,
)
from app.services.tenants import get_tenant

router = APIRouter(prefix="/api/v1/tenants", tags=["reports"])


@router.get("/{tenant_id}/reports/activations", response_model=ActivationReport)
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


@router.get("/{tenant_id}/reports/drift", response_model=DriftReport)
def drift(tenant_id: str, db: DatabaseDep, ctx: ContextDep, caller: RequireViewer) -> DriftReport:
    """Standing access that came back after conversion, and the standing Global Administrators."""
    with db.reading() as session:
        return drift_report(
            session, tenant_id=tenant_id, now=ctx.clock.now(), settings=ctx.settings.monitoring
        )


@router.post("/{tenant_id}/reports/collect", response_model=None, responses=JOB_RESPONSES)
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
