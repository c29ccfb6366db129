"""Plans: list, create, the timeline page with its live fragment, and the operator actions."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.domain.machine import Event
from app.engine import actions
from app.engine.jobs import JobProgress, JobRunner
from app.problems import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PreflightFailedError,
    StaleVersionError,
    TransitionRefusedError,
    UnavailableError,
)
from app.services import plans, tenants
from app.services.context import AppContext
from app.services.plans import PlanView
from app.services.templates import list_templates
from app.services.tokens import Caller, Role
from app.ui import flash, forms, views
from app.ui.deps import ContextDep, CsrfForm, DatabaseDep, RequireOperator, RequireViewer
from app.ui.jobs import JobsDep, problem_slug, recent_jobs, run_job
from app.ui.templating import render

router = APIRouter()


class ActionName(StrEnum):
    start = "start"
    pause = "pause"
    resume = "resume"
    advance = "advance"
    retry = "retry"
    abort = "abort"
    rollback = "rollback"


def _plan_url(request: Request, plan_id: str) -> str:
    return str(request.url_for("plan", plan_id=plan_id).path)


@router.get("/plans", name="plans")
def list_plans(
    request: Request,
    db: DatabaseDep,
    caller: RequireViewer,
    tenant: Annotated[str | None, Query()] = None,
) -> Response:
    with db.reading() as session:
        rows = plans.list_plan_views(session, tenant_id=tenant or None)
        names = {t.id: t.name for t in tenants.list_tenants(session)}
    items = [
        {
            "view": view,
            "tenant_name": names.get(view.row.tenant_id, view.row.tenant_id),
            "bar": views.progress_bar(views.sum_progress([p.progress for p in view.phases])),
            "current": next(
                (p for p in view.phases if p.row.key == views.current_phase_key(view)), None
            ),
        }
        for view in rows
    ]
    return render(
        request,
        "plans/list.html",
        {
            "items": items,
            "tenant_filter": tenant,
            "tenant_names": names,
            "can_create": caller.role.at_least(Role.operator),
        },
    )


def _new_plan_context(session: Session, ctx: AppContext, values: dict[str, str]) -> dict[str, Any]:
    return {
        "tenants": tenants.list_tenants(session),
        "templates": list_templates(ctx.settings.plans_dir),
        "values": values,
    }


@router.get("/plans/new", name="plan_new")
def new_plan(
    request: Request,
    db: DatabaseDep,
    ctx: ContextDep,
    caller: RequireOperator,
    tenant: Annotated[str | None, Query()] = None,
) -> Response:
    values = {"tenant_id": tenant or "", "template": "default", "name": ""}
    with db.reading() as session:
        context = _new_plan_context(session, ctx, values)
    return render(request, "plans/new.html", {**context, "errors": {}, "problems": []})


@router.post("/plans", name="plan_create")
def create_plan(
    request: Request, caller: RequireOperator, form: CsrfForm, db: DatabaseDep, ctx: ContextDep
) -> Response:
    parsed, errors = forms.parse(forms.PlanForm, form)
    values = {k: str(v) for k, v in forms.values_of(form).items()}
    problems: list[dict[str, str]] = []
    if parsed is not None:
        try:
            # A refusal raises out of the unit of work, which then rolls back.
            with db.writing() as session:
                view = plans.create_plan(
                    session,
                    tenant_id=parsed.tenant_id,
                    plans_dir=ctx.settings.plans_dir,
                    template=parsed.template,
                    spec_data=None,
                    name=parsed.name or None,
                    binding_overrides={},
                    actor=caller.actor,
                    now=ctx.clock.now(),
                )
        except NotFoundError as exc:
            errors["tenant_id"] = exc.detail
        except InvalidInputError as exc:
            errors["form"] = exc.detail
            problems = list(exc.extra.get("errors", []))
        else:
            flash.add(
                request.session,
                "success",
                f"Plan “{view.row.name}” created as a draft.",
                "Check the dry run (Preview) and the comms, then start it.",
            )
            return RedirectResponse(_plan_url(request, view.row.id), status_code=303)
    with db.reading() as session:
        context = _new_plan_context(session, ctx, values)
    return render(
        request,
        "plans/new.html",
        {**context, "errors": errors, "problems": problems},
        status_code=422,
    )


@router.get("/plans/{plan_id}", name="plan")
def plan_detail(
    request: Request, plan_id: str, db: DatabaseDep, ctx: ContextDep, caller: RequireViewer
) -> Response:
    now = ctx.clock.now()
    with db.reading() as session:
        page = views.load_plan_page(session, plan_id, caller)
        jobs = recent_jobs(session, now, plan_id=plan_id)
    fingerprint = views.live_fingerprint(page, now)
    return render(
        request,
        "plans/detail.html",
        {
            "page": page,
            "tab": "timeline",
            "fingerprint": fingerprint,
            "jobs": jobs,
            "jobs_running": any(j.running for j in jobs),
        },
    )


@router.get("/plans/{plan_id}/live", name="plan_live")
def plan_live(
    request: Request,
    plan_id: str,
    db: DatabaseDep,
    ctx: ContextDep,
    caller: RequireViewer,
    seen: Annotated[str | None, Query()] = None,
) -> Response:
    """The timeline fragment htmx polls while the plan can still move.

    Unchanged since the poller's copy: 204, which htmx does not swap, so keyboard focus and
    the reader's place stay where they are.
    """
    with db.reading() as session:
        page = views.load_plan_page(session, plan_id, caller)
    fingerprint = views.live_fingerprint(page, ctx.clock.now())
    if seen == fingerprint:
        return Response(status_code=204)
    return render(request, "partials/_plan_live.html", {"page": page, "fingerprint": fingerprint})


def _tenant_name(session: Session, tenant_id: str) -> str:
    try:
        return tenants.get_tenant(session, tenant_id).name
    except NotFoundError:
        return tenant_id


def _action_context(
    session: Session, view: PlanView, event: Event, phase: str | None
) -> dict[str, Any]:
    """What the action form shows; reads the tenant's name in the caller's unit of work."""
    target = phase
    if event is Event.advance and target is None:
        target = next(
            (
                p.row.key
                for p in view.phases
                if p.row.state == "awaiting_gate" and p.row.gate == "manual"
            ),
            None,
        )
    return {
        "view": view,
        "tenant_name": _tenant_name(session, view.row.tenant_id),
        "event": event,
        "label": views.ACTION_LABELS[event],
        "help": views.action_help(event, view),
        "destructive": event in views.DESTRUCTIVE,
        "phase": target,
        "phase_title": next((p.row.title for p in view.phases if p.row.key == target), None),
        "rollback_choices": views.rollback_choices(view) if event is Event.rollback else [],
    }


def _refused(request: Request, label: str, problem: dict[str, Any]) -> None:
    allowed = problem.get("allowed_events") or []
    flash.add(
        request.session,
        "error",
        f"{label} refused: {problem.get('detail', '')}.",
        f"The plan is {str(problem.get('current_state', '?')).replace('_', ' ')}. "
        + ("Allowed now: " + ", ".join(allowed) + "." if allowed else "No action applies now."),
    )


def _flash_problem(request: Request, label: str, problem: dict[str, Any]) -> None:
    """An action's refusal or failure, whether raised here or recorded by its job."""
    slug = problem_slug(problem)
    if slug == "preflight-failed":
        failed = [
            f"{c.get('name')}: {c.get('detail')}"
            for c in problem.get("checks", [])
            if not c.get("ok") and c.get("severity", "error") == "error"
        ]
        flash.add(
            request.session,
            "error",
            "Start refused: the preflight checks failed, so nothing was changed.",
            "Fix these and start again:",
            failed,
        )
    elif slug == "stale-version":
        flash.add(
            request.session,
            "warning",
            f"{label} not applied: the plan changed since you opened the form.",
            f"It is now {str(problem.get('current_state', '?')).replace('_', ' ')}"
            f" (version {problem.get('current_version', '?')}). Check it and try again.",
        )
    elif slug == "transition-refused":
        _refused(request, label, problem)
    else:
        flash.add(request.session, "error", f"{label} failed: {problem.get('detail', '')}")


def _flash_done(
    request: Request, label: str, phase: str | None, state: str, version: object
) -> None:
    phase_note = f" (phase {phase})" if phase else ""
    flash.add(
        request.session,
        "success",
        f"{label}{phase_note}: done.",
        f"The plan is now {state.replace('_', ' ')} (version {version}).",
    )


def _flash_already_running(request: Request, what: str, exc: ConflictError) -> None:
    flash.add(
        request.session, "warning", f"{what} is already running in the background.", exc.detail
    )


@router.get("/plans/{plan_id}/actions/{action}", name="plan_action")
def action_page(
    request: Request,
    plan_id: str,
    action: ActionName,
    db: DatabaseDep,
    caller: RequireOperator,
    phase: Annotated[str | None, Query()] = None,
) -> Response:
    event = Event(action.value)
    with db.reading() as session:
        view = plans.get_plan_view(session, plan_id)
        context = (
            _action_context(session, view, event, phase) if event in view.allowed_events else None
        )
    if context is None:
        _refused(
            request,
            views.ACTION_LABELS[event],
            TransitionRefusedError(
                f"{event.value} does not apply to a {view.row.state.replace('_', ' ')} plan",
                current_state=view.row.state,
                allowed_events=[e.value for e in view.allowed_events],
            ).to_problem(),
        )
        return RedirectResponse(_plan_url(request, plan_id), status_code=303)
    return render(request, "plans/action.html", {**context, "errors": {}, "values": {}})


@router.post("/plans/{plan_id}/actions/{action}", name="plan_action_submit")
async def submit_action(
    request: Request,
    plan_id: str,
    action: ActionName,
    caller: RequireOperator,
    form: CsrfForm,
    ctx: ContextDep,
    runner: JobsDep,
) -> Response:
    event = Event(action.value)
    label = views.ACTION_LABELS[event]
    parsed, errors = forms.parse(forms.ActionForm, form)
    if parsed is not None and event in views.DESTRUCTIVE and not parsed.confirm:
        errors["confirm"] = "Tick the box to confirm; nothing was changed."
    if parsed is None or errors:
        values = {k: str(v) for k, v in forms.values_of(form).items()}

        def form_context(session: Session) -> dict[str, Any]:
            view = plans.get_plan_view(session, plan_id)
            return _action_context(session, view, event, values.get("phase"))

        context = await ctx.db.read(form_context)
        return render(
            request,
            "plans/action.html",
            {**context, "errors": errors, "values": values},
            status_code=422,
        )
    action_form = parsed
    if event is Event.start:
        await _start(request, plan_id, caller, action_form, ctx, runner)
        return RedirectResponse(_plan_url(request, plan_id), status_code=303)
    now = ctx.clock.now()

    def perform(session: Session) -> PlanView:
        return plans.perform_action(
            session,
            plan_id=plan_id,
            event=event,
            actor=caller.actor,
            reason=action_form.reason,
            now=now,
            phase_key=action_form.phase,
            expected_version=action_form.expected_version,
        )

    try:
        view = await ctx.db.write(perform)
    except (
        PreflightFailedError,
        StaleVersionError,
        TransitionRefusedError,
        UnavailableError,
    ) as exc:
        _flash_problem(request, label, exc.to_problem())
    else:
        _flash_done(request, label, action_form.phase, view.row.state, view.row.version)
    return RedirectResponse(_plan_url(request, plan_id), status_code=303)


async def _start(
    request: Request,
    plan_id: str,
    caller: Caller,
    form: forms.ActionForm,
    ctx: AppContext,
    runner: JobRunner,
) -> None:
    """Start (preflight, then the baseline) as a job; flash its outcome, or that it carries on."""
    label = views.ACTION_LABELS[Event.start]
    plan = await ctx.db.read(lambda session: plans.get_plan_row(session, plan_id))

    async def work(progress: JobProgress) -> dict[str, Any]:
        view = await actions.start(
            runner.ectx,
            plan_id=plan_id,
            actor=caller.actor,
            reason=form.reason,
            expected_version=form.expected_version,
            progress=progress,
        )
        return {"plan_id": plan_id, "state": view.row.state, "version": view.row.version}

    try:
        outcome = await run_job(
            runner,
            kind="start",
            tenant_id=plan.tenant_id,
            plan_id=plan_id,
            actor=caller.actor,
            work=work,
        )
    except ConflictError as exc:
        _flash_already_running(request, label, exc)
        return
    if outcome.succeeded:
        _flash_done(request, label, None, outcome.result["state"], outcome.result["version"])
    elif outcome.failed:
        _flash_problem(request, label, outcome.problem or {})
    else:
        flash.add(
            request.session,
            "info",
            "Starting the plan in the background: preflight, then the baseline.",
            "Progress shows below.",
        )


@router.post("/plans/{plan_id}/preflight", name="plan_preflight")
async def run_preflight(
    request: Request,
    plan_id: str,
    caller: RequireOperator,
    form: CsrfForm,
    ctx: ContextDep,
    runner: JobsDep,
) -> Response:
    """Run the preflight checks now; they are recorded in the history and change nothing."""
    plan = await ctx.db.read(lambda session: plans.get_plan_row(session, plan_id))

    async def work(progress: JobProgress) -> dict[str, Any]:
        progress("preflight")
        report = await actions.preflight(runner.ectx, plan_id=plan_id, actor=caller.actor)
        return report.to_json()

    try:
        outcome = await run_job(
            runner,
            kind="preflight",
            tenant_id=plan.tenant_id,
            plan_id=plan_id,
            actor=caller.actor,
            work=work,
        )
    except ConflictError as exc:
        _flash_already_running(request, "Preflight", exc)
        return RedirectResponse(_plan_url(request, plan_id), status_code=303)
    if outcome.succeeded and outcome.result.get("passed"):
        flash.add(request.session, "success", "Preflight passed.")
    elif outcome.succeeded:
        flash.add(
            request.session,
            "error",
            "Preflight failed.",
            "These checks would refuse a start:",
            [
                f"{c.get('name')}: {c.get('detail')}"
                for c in outcome.result.get("checks", [])
                if not c.get("ok") and c.get("severity", "error") == "error"
            ],
        )
    elif outcome.failed:
        flash.add(request.session, "error", "Preflight could not run.", outcome.detail)
    else:
        flash.add(
            request.session,
            "info",
            "Running the preflight checks in the background.",
            "Progress shows below; the result shows in the Preflight section once they finish.",
        )
    return RedirectResponse(_plan_url(request, plan_id), status_code=303)
