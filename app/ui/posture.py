"""The MS.AAD.7 posture pages: a tenant's pass/fail table, and a plan's before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.db.models import Plan, Tenant
from app.engine.jobs import JobProgress, JobRunner
from app.engine.posture import PostureReadError, take_posture
from app.problems import ConflictError, NotFoundError, UnavailableError
from app.services import plans, tenants
from app.services.posture import latest_tenant_report, plan_posture, posture_csv
from app.services.tokens import Caller, Role
from app.ui import flash, views
from app.ui.deps import ContextDep, CsrfForm, DatabaseDep, RequireOperator, RequireViewer
from app.ui.jobs import JobsDep, Outcome, recent_jobs, run_job
from app.ui.templating import render

router = APIRouter()

TRIGGER_LABELS = {
    "on_demand": "taken on demand",
    "baseline": "taken with the baseline at the plan's start",
    "phase_completed": "taken when a phase completed",
    "rolled_back": "taken when the rollback finished",
}


@dataclass(frozen=True)
class Column:
    """One report in the plan's before/after table."""

    label: str
    report: dict[str, Any] | None

    def result(self, policy_id: str) -> str | None:
        if self.report is None:
            return None
        return next(
            (p["result"] for p in self.report["policies"] if p["policy_id"] == policy_id), None
        )


def plan_columns(view: dict[str, Any]) -> list[Column]:
    """Before, after each phase that completed, after a rollback, and now."""
    columns = [Column("Before", view["before"])]
    columns += [
        Column(f"After {phase['phase']}", phase["report"])
        for phase in view["phases"]
        if phase["report"] is not None
    ]
    if view["rolled_back"] is not None:
        columns.append(Column("After rollback", view["rolled_back"]))
    columns.append(Column("Now", view["now"]))
    return columns


def taken_at(report: dict[str, Any] | None) -> datetime | None:
    """When a report (as JSON) was taken, for the page's relative times."""
    if report is None:
        return None
    return datetime.fromisoformat(str(report["taken_at"]).replace("Z", "+00:00"))


def _tenant_url(request: Request, tenant_id: str) -> str:
    return str(request.url_for("tenant_posture", tenant_id=tenant_id).path)


def _plan_url(request: Request, plan_id: str) -> str:
    return str(request.url_for("plan_posture", plan_id=plan_id).path)


def _flash_outcome(request: Request, outcome: Outcome) -> None:
    if outcome.succeeded:
        flash.add(request.session, "success", "Posture report taken.")
    elif outcome.failed:
        flash.add(
            request.session, "error", "The posture report could not be taken.", outcome.detail
        )
    else:
        flash.add(
            request.session,
            "info",
            "Reading the tenant in the background.",
            "Progress shows below; the report shows once it is taken.",
        )


async def _take(
    request: Request,
    runner: JobRunner,
    caller: Caller,
    tenant: Tenant,
    plan: Plan | None,
) -> None:
    async def work(progress: JobProgress) -> dict[str, Any]:
        try:
            reports = await take_posture(
                runner.ectx, tenant, plan=plan, actor=caller.actor, progress=progress
            )
        except PostureReadError as exc:
            raise UnavailableError(str(exc)) from None
        return {"report_ids": [r.id for r in reports], "summary": reports[-1].summary}

    try:
        outcome = await run_job(
            runner,
            kind="posture",
            tenant_id=tenant.id,
            plan_id=plan.id if plan is not None else None,
            actor=caller.actor,
            work=work,
        )
    except ConflictError as exc:
        flash.add(
            request.session, "warning", "A posture report is already being taken.", exc.detail
        )
    else:
        _flash_outcome(request, outcome)


@router.get("/tenants/{tenant_id}/posture", name="tenant_posture")
def tenant_page(
    request: Request, tenant_id: str, db: DatabaseDep, ctx: ContextDep, caller: RequireViewer
) -> Response:
    now = ctx.clock.now()
    with db.reading() as session:
        tenant = tenants.get_tenant(session, tenant_id)
        try:
            report: dict[str, Any] | None = latest_tenant_report(session, tenant_id)
        except NotFoundError:
            report = None
        jobs = recent_jobs(session, now, tenant_id=tenant_id)
    return render(
        request,
        "posture/tenant.html",
        {
            "tenant": tenant,
            "report": report,
            "taken_at": taken_at(report),
            "trigger_labels": TRIGGER_LABELS,
            "can_operate": caller.role.at_least(Role.operator),
            "jobs": jobs,
            "jobs_running": any(j.running for j in jobs),
        },
    )


@router.get("/tenants/{tenant_id}/posture.csv", name="tenant_posture_csv")
def tenant_csv(tenant_id: str, db: DatabaseDep, caller: RequireViewer) -> Response:
    with db.reading() as session:
        report = latest_tenant_report(session, tenant_id)
    return Response(
        posture_csv(report),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="tenant-{tenant_id}-posture.csv"'},
    )


@router.post("/tenants/{tenant_id}/posture", name="tenant_posture_take")
async def take_for_tenant(
    request: Request,
    tenant_id: str,
    ctx: ContextDep,
    caller: RequireOperator,
    form: CsrfForm,
    runner: JobsDep,
) -> Response:
    """Read the tenant now and record its posture, as a job."""
    tenant = await ctx.db.read(lambda session: tenants.get_tenant(session, tenant_id))
    await _take(request, runner, caller, tenant, None)
    return RedirectResponse(_tenant_url(request, tenant_id), status_code=303)


@router.get("/plans/{plan_id}/posture", name="plan_posture")
def plan_page(
    request: Request, plan_id: str, db: DatabaseDep, ctx: ContextDep, caller: RequireViewer
) -> Response:
    now = ctx.clock.now()
    with db.reading() as session:
        page = views.load_plan_page(session, plan_id, caller)
        view = plan_posture(session, plan_id)
        jobs = recent_jobs(session, now, plan_id=plan_id)
    return render(
        request,
        "plans/posture.html",
        {
            "page": page,
            "tab": "posture",
            "view": view,
            "columns": plan_columns(view),
            "report": view["now"],
            "taken_at": taken_at(view["now"]),
            "trigger_labels": TRIGGER_LABELS,
            "jobs": jobs,
            "jobs_running": any(j.running for j in jobs),
        },
    )


@router.post("/plans/{plan_id}/posture", name="plan_posture_take")
async def take_for_plan(
    request: Request,
    plan_id: str,
    ctx: ContextDep,
    caller: RequireOperator,
    form: CsrfForm,
    runner: JobsDep,
) -> Response:
    """Read the tenant now and record the plan's posture ("now"), as a job."""

    def load(session: Session) -> tuple[Plan, Tenant]:
        plan = plans.get_plan_row(session, plan_id)
        return plan, tenants.get_tenant(session, plan.tenant_id)

    plan, tenant = await ctx.db.read(load)
    await _take(request, runner, caller, tenant, plan)
    return RedirectResponse(_plan_url(request, plan_id), status_code=303)
