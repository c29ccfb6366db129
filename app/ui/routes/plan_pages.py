"""A plan's other tabs: dry-run preview (and its CSV), journal, history, comms, baseline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlmodel import Session
from starlette.responses import Response

from app.db.models import Plan, Tenant
from app.engine.context import EngineContext
from app.engine.preview import PhasePreview, preview_csv, preview_plan
from app.graph.errors import GraphError
from app.problems import InvalidInputError, NotFoundError
from app.services import plans
from app.services.comms_preview import render_phase_comms
from app.services.context import AppContext
from app.services.tokens import Caller
from app.ui import queries, views
from app.ui.deps import ContextDep, DatabaseDep, RequireOperator, RequireViewer
from app.ui.errors import error_page
from app.ui.templating import render

router = APIRouter()

# The comms page is someone else's HTML: shown in a sandboxed frame that may style itself,
# run nothing, load nothing, and be framed only by our own pages.
COMMS_FRAME_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)


async def _previews(
    ctx: AppContext, plan_id: str, caller: Caller
) -> tuple[views.PlanPage, list[PhasePreview]]:
    def load(session: Session) -> tuple[views.PlanPage, Plan, Tenant]:
        page = views.load_plan_page(session, plan_id, caller)
        if page.tenant is None:
            raise NotFoundError(f"the plan's tenant {page.plan.tenant_id} no longer exists")
        return page, page.plan, page.tenant

    page, plan, tenant = await ctx.db.read(load)
    return page, await preview_plan(EngineContext.from_app(ctx), plan=plan, tenant=tenant)


@router.get("/plans/{plan_id}/preview", name="plan_preview")
async def preview(
    request: Request,
    plan_id: str,
    caller: RequireOperator,
    ctx: ContextDep,
    phase: Annotated[str | None, Query()] = None,
) -> Response:
    """The dry run: per phase, exactly what would change. Reads the tenant, writes nothing."""
    try:
        page, previews = await _previews(ctx, plan_id, caller)
    except GraphError as exc:
        return error_page(
            request,
            503,
            f"The tenant could not be read for the dry run: {exc.code or exc.status}: "
            f"{exc.message}",
            title="Tenant unavailable",
        )
    shown = [p for p in previews if phase in (None, "", p.key)]
    return render(
        request,
        "plans/preview.html",
        {
            "page": page,
            "tab": "preview",
            "previews": shown,
            "all_previews": previews,
            "phase": phase or "",
            "counts": {p.key: views.change_counts(p) for p in previews},
        },
    )


@router.get("/plans/{plan_id}/preview.csv", name="plan_preview_csv")
async def preview_download(
    request: Request, plan_id: str, caller: RequireOperator, ctx: ContextDep
) -> Response:
    """The dry run as CSV, for sign-off by someone who does not use the tool."""
    try:
        _, previews = await _previews(ctx, plan_id, caller)
    except GraphError as exc:
        return error_page(
            request,
            503,
            f"The tenant could not be read: {exc.code or exc.status}: {exc.message}",
            title="Tenant unavailable",
        )
    return Response(
        preview_csv(previews),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="plan-{plan_id}-preview.csv"'},
    )


@router.get("/plans/{plan_id}/journal", name="plan_journal")
def journal(
    request: Request,
    plan_id: str,
    db: DatabaseDep,
    caller: RequireViewer,
    phase: Annotated[str | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    with db.reading() as session:
        plan_page = views.load_plan_page(session, plan_id, caller)
        entries = queries.journal_page(session, plan_id, phase=phase, page=page)
    return render(
        request,
        "plans/journal.html",
        {
            "page": plan_page,
            "tab": "journal",
            "journal": entries,
            "targets": {e.id: views.target_text(e.target) for e in entries.entries},
        },
    )


@router.get("/plans/{plan_id}/history", name="plan_history")
def history(request: Request, plan_id: str, db: DatabaseDep, caller: RequireViewer) -> Response:
    with db.reading() as session:
        plan_page = views.load_plan_page(session, plan_id, caller)
        rows = plans.history(session, plan_id)
    entries = views.history_entries(rows)
    return render(
        request, "plans/history.html", {"page": plan_page, "tab": "history", "entries": entries}
    )


@router.get("/plans/{plan_id}/comms", name="plan_comms")
def comms(
    request: Request,
    plan_id: str,
    db: DatabaseDep,
    ctx: ContextDep,
    caller: RequireViewer,
    phase: Annotated[str | None, Query()] = None,
) -> Response:
    rendered = None
    problem = None
    with db.reading() as session:
        plan_page = views.load_plan_page(session, plan_id, caller)
        choices = plan_page.comms_phases
        chosen = phase if phase in choices else (choices[0] if choices else None)
        if chosen is not None:
            try:
                rendered = render_phase_comms(
                    session, plan_id=plan_id, phase_key=chosen, public_url=ctx.settings.public_url
                )
            except InvalidInputError as exc:
                problem = exc.detail
    return render(
        request,
        "plans/comms.html",
        {
            "page": plan_page,
            "tab": "comms",
            "choices": choices,
            "phase": chosen,
            "rendered": rendered,
            "problem": problem,
        },
    )


@router.get("/plans/{plan_id}/comms/{phase_key}/frame", name="plan_comms_frame")
def comms_frame(
    plan_id: str, phase_key: str, db: DatabaseDep, ctx: ContextDep, caller: RequireViewer
) -> Response:
    """The mail's HTML alone, for the sandboxed preview frame."""
    with db.reading() as session:
        rendered = render_phase_comms(
            session, plan_id=plan_id, phase_key=phase_key, public_url=ctx.settings.public_url
        )
    return Response(
        rendered.html,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": COMMS_FRAME_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


@router.get("/plans/{plan_id}/baseline", name="plan_baseline")
def baseline(
    request: Request,
    plan_id: str,
    db: DatabaseDep,
    caller: RequireViewer,
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    with db.reading() as session:
        plan_page = views.load_plan_page(session, plan_id, caller)
        inventory = queries.latest_inventory(
            session, plan_page.plan.tenant_id, plan_id=plan_id, page=page
        )
    return render(
        request,
        "plans/baseline.html",
        {"page": plan_page, "tab": "baseline", "inventory": inventory},
    )
