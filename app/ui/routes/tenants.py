"""Tenants: list, detail with the latest inventory, take inventory, freeze, add (admins)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from app.domain.tenant import TenantSpec
from app.domain.validation import problems_from_validation_error
from app.engine.inventory import InventoryError, take_inventory
from app.engine.jobs import JobProgress
from app.problems import ConflictError, UnavailableError
from app.services import plans, tenants
from app.services.tokens import Role
from app.ui import flash, forms, queries, views
from app.ui.deps import (
    ContextDep,
    CsrfForm,
    DatabaseDep,
    RequireAdmin,
    RequireOperator,
    RequireViewer,
)
from app.ui.jobs import JobsDep, recent_jobs, run_job
from app.ui.templating import render

router = APIRouter()

EXAMPLE_TENANT = {
    "name": "Contoso",
    "graph_base_url": "https://graph.microsoft.com/v1.0",
    "auth": {
        "kind": "client_secret",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "client_id": "00000000-0000-0000-0000-000000000000",
        "client_secret": "…",
    },
    "break_glass_ids": ["…", "…"],
    "bindings": {"it_platform_team": {"kind": "group", "id": "…"}},
    "comms": {"sender": "pim-rollout@contoso.com"},
}


def _tenant_url(request: Request, tenant_id: str) -> str:
    return str(request.url_for("tenant", tenant_id=tenant_id).path)


@router.get("/tenants", name="tenants")
def list_tenants(request: Request, db: DatabaseDep, caller: RequireViewer) -> Response:
    with db.reading() as session:
        rows = tenants.list_tenants(session)
        plan_views = plans.list_plan_views(session)
    counts: dict[str, int] = {}
    for view in plan_views:
        counts[view.row.tenant_id] = counts.get(view.row.tenant_id, 0) + 1
    return render(
        request,
        "tenants/list.html",
        {
            "tenants": rows,
            "plan_counts": counts,
            "automation": {t.id: views.freeze_label(t.automation) for t in rows},
            "can_add": caller.role.at_least(Role.admin),
        },
    )


@router.get("/tenants/new", name="tenant_new")
def new_tenant(request: Request, caller: RequireAdmin) -> Response:
    return render(request, "tenants/new.html", _new_context("", {}, []))


def _new_context(body: str, errors: dict[str, str], problems: list[str]) -> dict[str, Any]:
    return {
        "body": body,
        "errors": errors,
        "problems": problems,
        "example": json.dumps(EXAMPLE_TENANT, indent=2, ensure_ascii=False),
    }


@router.post("/tenants", name="tenant_create")
def create_tenant(
    request: Request, caller: RequireAdmin, form: CsrfForm, db: DatabaseDep, ctx: ContextDep
) -> Response:
    parsed, errors = forms.parse(forms.TenantForm, form)
    problems: list[str] = []
    if parsed is not None:
        try:
            spec = TenantSpec.model_validate_json(parsed.body)
            # A conflict raises out of the unit of work, which then rolls back.
            with db.writing() as session:
                row = tenants.create_tenant(
                    session, spec=spec, box=ctx.secret_box, now=ctx.clock.now()
                )
        except ValidationError as exc:
            errors["body"] = "The tenant is not valid; see the problems below."
            problems = [str(p) for p in problems_from_validation_error(exc)]
        except ConflictError as exc:
            errors["body"] = exc.detail
        else:
            flash.add(request.session, "success", f"Tenant “{row.name}” added.")
            return RedirectResponse(_tenant_url(request, row.id), status_code=303)
    # The body may hold a client secret: it is not sent back into the page.
    return render(request, "tenants/new.html", _new_context("", errors, problems), status_code=422)


@router.get("/tenants/{tenant_id}", name="tenant")
def tenant_detail(
    request: Request,
    tenant_id: str,
    db: DatabaseDep,
    ctx: ContextDep,
    caller: RequireViewer,
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    now = ctx.clock.now()
    with db.reading() as session:
        row = tenants.get_tenant(session, tenant_id)
        tenant_plans = plans.list_plan_views(session, tenant_id=tenant_id)
        inventory = queries.latest_inventory(session, tenant_id, page=page)
        jobs = recent_jobs(session, now, tenant_id=tenant_id)
    return render(
        request,
        "tenants/detail.html",
        {
            "tenant": row,
            "auth_public": {k: v for k, v in row.auth_public.items() if k != "kind"},
            "has_secret": row.auth_secret_encrypted is not None,
            "automation_label": views.freeze_label(row.automation),
            "inventory": inventory,
            "plans": tenant_plans,
            "can_operate": caller.role.at_least(Role.operator),
            "can_admin": caller.role.at_least(Role.admin),
            "jobs": jobs,
            "jobs_running": any(j.running for j in jobs),
        },
    )


@router.post("/tenants/{tenant_id}/inventory", name="tenant_inventory")
async def take_inventory_now(
    request: Request,
    tenant_id: str,
    caller: RequireOperator,
    form: CsrfForm,
    ctx: ContextDep,
    runner: JobsDep,
) -> Response:
    """Read every permanent Active assignment now and store it as a snapshot (as a job)."""
    row = await ctx.db.read(lambda session: tenants.get_tenant(session, tenant_id))

    async def work(progress: JobProgress) -> dict[str, Any]:
        try:
            snapshot = await take_inventory(runner.ectx, row, progress=progress)
        except InventoryError as exc:
            raise UnavailableError(str(exc)) from None
        return {"snapshot_id": snapshot.id, "item_count": snapshot.item_count}

    try:
        outcome = await run_job(
            runner,
            kind="inventory",
            tenant_id=tenant_id,
            plan_id=None,
            actor=caller.actor,
            work=work,
        )
    except ConflictError as exc:
        flash.add(request.session, "warning", "An inventory is already being taken.", exc.detail)
    else:
        if outcome.succeeded:
            flash.add(
                request.session,
                "success",
                f"Inventory taken: {outcome.result.get('item_count')} permanent Active "
                "assignment(s).",
            )
        elif outcome.failed:
            flash.add(request.session, "error", "The inventory could not be taken.", outcome.detail)
        else:
            flash.add(
                request.session,
                "info",
                "Taking the inventory in the background.",
                "Progress shows below; the inventory shows once it is taken.",
            )
    return RedirectResponse(_tenant_url(request, tenant_id), status_code=303)


@router.post("/tenants/{tenant_id}/automation", name="tenant_freeze")
def set_freeze(
    request: Request,
    tenant_id: str,
    caller: RequireAdmin,
    form: CsrfForm,
    db: DatabaseDep,
    ctx: ContextDep,
) -> Response:
    """Freeze (or thaw) automatic progression for every plan of this tenant."""
    parsed, _ = forms.parse(forms.FreezeForm, form)
    frozen = bool(parsed and parsed.frozen)
    with db.writing() as session:
        row = tenants.get_tenant(session, tenant_id)
        tenants.update_tenant(
            session,
            tenant_id=tenant_id,
            changes={"automation": {**row.automation, "frozen": frozen}},
            box=ctx.secret_box,
            now=ctx.clock.now(),
        )
    flash.add(
        request.session,
        "success",
        "Automatic progression frozen for this tenant."
        if frozen
        else "Automatic progression allowed again for this tenant.",
    )
    return RedirectResponse(_tenant_url(request, tenant_id), status_code=303)
