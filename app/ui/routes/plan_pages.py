"""A plan's other tabs: dry-run preview (and its CSV), journal, history, comms, baseline."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.db.models import Plan, Tenant
from app.engine.comms_recipients import comms_for, phase_recipients, render_comms
from app.engine.jobs import JobProgress, JobRunner
from app.engine.preview import preview_csv_from_json, preview_json, preview_plan
from app.graph.errors import GraphError
from app.problems import ConflictError, InvalidInputError, NotFoundError, UnavailableError
from app.services import plans
from app.services.comms_preview import CommsRecipient, find_recipient
from app.services.context import AppContext
from app.services.tokens import Caller
from app.ui import flash, queries, views
from app.ui.deps import ContextDep, DatabaseDep, RequireOperator, RequireViewer
from app.ui.errors import error_page
from app.ui.jobs import JobsDep, Outcome, outcome_of, problem_slug, run_job
from app.ui.templating import render

router = APIRouter()

# The comms page is someone else's HTML: shown in a sandboxed frame that may style itself,
# run nothing, load nothing, and be framed only by our own pages.
COMMS_FRAME_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)


def _preview_url(request: Request, plan_id: str, **query: str | None) -> str:
    path = str(request.url_for("plan_preview", plan_id=plan_id).path)
    pairs = {k: v for k, v in query.items() if v}
    return path + ("?" + urlencode(pairs) if pairs else "")


async def _load(
    ctx: AppContext, plan_id: str, caller: Caller
) -> tuple[views.PlanPage, Plan, Tenant]:
    def load(session: Session) -> tuple[views.PlanPage, Plan, Tenant]:
        page = views.load_plan_page(session, plan_id, caller)
        if page.tenant is None:
            raise NotFoundError(f"the plan's tenant {page.plan.tenant_id} no longer exists")
        return page, page.plan, page.tenant

    return await ctx.db.read(load)


async def _run_preview(runner: JobRunner, plan: Plan, tenant: Tenant, caller: Caller) -> Outcome:
    """The dry run as a job (its result: ``{"plan_id", "phases": preview_json(...)}``).

    A dry run of this plan already running raises ``ConflictError`` naming it (``job_id``).
    """

    async def work(progress: JobProgress) -> dict[str, Any]:
        progress("reading the tenant")
        try:
            previews = await preview_plan(runner.ectx, plan=plan, tenant=tenant)
        except GraphError as exc:
            raise UnavailableError(
                f"The tenant could not be read for the dry run: {exc.code or exc.status}: "
                f"{exc.message}"
            ) from None
        return {"plan_id": plan.id, "phases": preview_json(previews)}

    return await run_job(
        runner,
        kind="preview",
        tenant_id=plan.tenant_id,
        plan_id=plan.id,
        actor=caller.actor,
        work=work,
    )


async def _preview_job(runner: JobRunner, plan_id: str, job_id: str) -> Outcome:
    """A dry run computed earlier (or still computing), by its job."""
    job = await runner.get(job_id)
    if job.kind != "preview" or job.plan_id != plan_id:
        raise NotFoundError(f"no dry run {job_id} of this plan")
    return outcome_of(job, runner.ectx.clock.now())


def _to_running(
    request: Request, plan_id: str, exc: ConflictError, phase: str | None = None
) -> Response:
    """To the dry run already computing (the conflict names its job)."""
    running = exc.extra.get("job_id")
    if not isinstance(running, str):
        flash.add(request.session, "warning", "The dry run could not be started.", exc.detail)
        return RedirectResponse(str(request.url_for("plan", plan_id=plan_id).path), 303)
    return RedirectResponse(_preview_url(request, plan_id, job=running, phase=phase), 303)


def _failed(request: Request, outcome: Outcome) -> Response:
    problem = outcome.problem or {}
    unavailable = problem_slug(problem) == "unavailable"
    return error_page(
        request,
        int(problem.get("status", 500)),
        outcome.detail,
        title="Tenant unavailable" if unavailable else str(problem.get("title") or "Error"),
    )


@router.get("/plans/{plan_id}/preview", name="plan_preview")
async def preview(
    request: Request,
    plan_id: str,
    caller: RequireOperator,
    ctx: ContextDep,
    runner: JobsDep,
    phase: Annotated[str | None, Query()] = None,
    job: Annotated[str | None, Query(max_length=36)] = None,
) -> Response:
    """The dry run: per phase, exactly what would change. Reads the tenant, writes nothing.

    It runs as a job; without ``job`` it starts one and waits a little for it. Still
    computing, the page says so and reloads itself on ``?job=<id>`` until the result is in.
    """
    page, plan, tenant = await _load(ctx, plan_id, caller)
    if job:
        outcome = await _preview_job(runner, plan_id, job)
    else:
        try:
            outcome = await _run_preview(runner, plan, tenant, caller)
        except ConflictError as exc:
            # One dry run of this plan at a time: show the one already computing.
            return _to_running(request, plan_id, exc, phase=phase)
    if outcome.failed:
        return _failed(request, outcome)
    context: dict[str, Any] = {
        "page": page,
        "tab": "preview",
        "phase": phase or "",
        "job": outcome.job,
        "from_job": bool(job),
        "computing": outcome.running,
        "refresh_url": _preview_url(request, plan_id, job=outcome.job.id, phase=phase),
        "progress_step": str((outcome.job.progress or {}).get("step") or ""),
    }
    if outcome.running:
        return render(
            request,
            "plans/preview.html",
            {**context, "previews": [], "all_previews": [], "counts": {}},
        )
    previews = views.previews_from_json(outcome.result.get("phases", []))
    shown = [p for p in previews if phase in (None, "", p.key)]
    return render(
        request,
        "plans/preview.html",
        {
            **context,
            "previews": shown,
            "all_previews": previews,
            "counts": {p.key: views.change_counts(p) for p in previews},
        },
    )


@router.get("/plans/{plan_id}/preview.csv", name="plan_preview_csv")
async def preview_download(
    request: Request,
    plan_id: str,
    caller: RequireOperator,
    ctx: ContextDep,
    runner: JobsDep,
    job: Annotated[str | None, Query(max_length=36)] = None,
) -> Response:
    """The dry run as CSV, for sign-off by someone who does not use the tool.

    ``job``: that dry run's result; without it, a fresh one (as a job, like the page).
    """
    if job:
        outcome = await _preview_job(runner, plan_id, job)
    else:
        _, plan, tenant = await _load(ctx, plan_id, caller)
        try:
            outcome = await _run_preview(runner, plan, tenant, caller)
        except ConflictError as exc:
            flash.add(
                request.session,
                "info",
                "A dry run of this plan is already being computed.",
                "Download the CSV from this page once it is ready.",
            )
            return _to_running(request, plan_id, exc)
    if outcome.failed:
        return _failed(request, outcome)
    if outcome.running:
        flash.add(
            request.session,
            "info",
            "The dry run is still being computed.",
            "Download the CSV from this page once it is ready.",
        )
        return RedirectResponse(_preview_url(request, plan_id, job=outcome.job.id), status_code=303)
    return Response(
        preview_csv_from_json(outcome.result.get("phases", [])),
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
async def comms(
    request: Request,
    plan_id: str,
    ctx: ContextDep,
    runner: JobsDep,
    caller: RequireViewer,
    phase: Annotated[str | None, Query()] = None,
    recipient: Annotated[str | None, Query(max_length=320)] = None,
) -> Response:
    """A phase's comms: the overview page, or one recipient's own mail (the picker)."""
    plan_page = await ctx.db.read(lambda session: views.load_plan_page(session, plan_id, caller))
    choices = plan_page.comms_phases
    chosen = phase if phase in choices else (choices[0] if choices else None)
    rendered = problem = recipients_problem = None
    recipients: list[CommsRecipient] = []
    person: CommsRecipient | None = None
    if chosen is not None:
        try:
            recipients = await phase_recipients(runner.ectx, plan_id=plan_id, phase_key=chosen)
        except UnavailableError as exc:
            recipients_problem = exc.detail
        try:
            if recipient:
                person = find_recipient(recipients, recipient, phase_key=chosen)
            rendered = await render_comms(
                runner.ectx,
                plan_id=plan_id,
                phase_key=chosen,
                public_url=ctx.settings.public_url,
                recipient=person,
            )
        except (InvalidInputError, NotFoundError) as exc:
            problem = recipients_problem if recipient and recipients_problem else exc.detail
    frame_url = None
    if rendered is not None and chosen is not None:
        frame_url = str(
            request.url_for("plan_comms_frame", plan_id=plan_id, phase_key=chosen).path
        ) + ("?" + urlencode({"recipient": person.id}) if person else "")
    return render(
        request,
        "plans/comms.html",
        {
            "page": plan_page,
            "tab": "comms",
            "choices": choices,
            "phase": chosen,
            "recipients": recipients,
            "recipient": person,
            "recipients_problem": recipients_problem,
            "frame_url": frame_url,
            "rendered": rendered,
            "problem": problem,
        },
    )


@router.get("/plans/{plan_id}/comms/{phase_key}/frame", name="plan_comms_frame")
async def comms_frame(
    plan_id: str,
    phase_key: str,
    ctx: ContextDep,
    runner: JobsDep,
    caller: RequireViewer,
    recipient: Annotated[str | None, Query(max_length=320)] = None,
) -> Response:
    """The mail's HTML alone, for the sandboxed preview frame."""
    rendered, _ = await comms_for(
        runner.ectx,
        plan_id=plan_id,
        phase_key=phase_key,
        public_url=ctx.settings.public_url,
        wanted=recipient or None,
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
