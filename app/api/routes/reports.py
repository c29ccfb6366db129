"""Monitoring reports: activation signals and drift, per tenant; and collecting on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import RequireOperator, RequireViewer
from app.api.deps import ContextDep, DatabaseDep
from app.engine.context import EngineContext
from app.engine.monitoring import collect_now
from app.problems import ConflictError, UnavailableError
from app.services.monitoring.collect import CollectionError, CollectionResult
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


@router.post("/{tenant_id}/reports/collect", response_model=CollectionResult)
async def collect(tenant_id: str, ctx: ContextDep, caller: RequireOperator) -> CollectionResult:
    """Collect the tenant's PIM activity now (the scheduler does it every few minutes)."""
    tenant = await ctx.db.read(lambda session: get_tenant(session, tenant_id))
    try:
        result = await collect_now(EngineContext.from_app(ctx), tenant, ctx.settings.monitoring)
    except CollectionError as exc:
        raise UnavailableError(f"collecting from Graph failed: {exc}") from None
    if result is None:
        raise ConflictError("another worker is collecting this tenant's activity right now")
    return result
