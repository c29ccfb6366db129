"""Plans: list, create, the timeline page with its live fragment, and the operator actions."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.domain.machine import Event
from app.engine import actions
from app.engine.context import EngineContext
from app.problems import (
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
from app.services.tokens import Role
from app.ui import flash, forms, views
from app.ui.deps import ContextDep, CsrfForm, DatabaseDep, RequireOperator, RequireViewer
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
    with db.reading() as session:
        page = views.load_plan_page(session, plan_id, caller)
    fingerprint = views.live_fingerprint(page, ctx.clock.now())
    return render(
        request,
        "plans/detail.html",
        {"page": page, "tab": "timeline", "fingerprint": fingerprint},
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


def _refused(request: Request, label: str, exc: TransitionRefusedError) -> None:
    allowed = exc.extra.get("allowed_events") or []
    flash.add(
        request.session,
        "error",
        f"{label} refused: {exc.detail}.",
        f"The plan is {str(exc.extra.get('current_state', '?')).replace('_', ' ')}. "
        + ("Allowed now: " + ", ".join(allowed) + "." if allowed else "No action applies now."),
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
            ),
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
        if event is Event.start:
            view = await actions.start(
                EngineContext.from_app(ctx),
                plan_id=plan_id,
                actor=caller.actor,
                reason=parsed.reason,
                expected_version=parsed.expected_version,
            )
        else:
            view = await ctx.db.write(perform)
    except PreflightFailedError as exc:
        failed = [
            f"{c.get('name')}: {c.get('detail')}"
            for c in exc.extra.get("checks", [])
            if not c.get("ok") and c.get("severity", "error") == "error"
        ]
        flash.add(
            request.session,
            "error",
            "Start refused: the preflight checks failed, so nothing was changed.",
            "Fix these and start again:",
            failed,
        )
    except StaleVersionError as exc:
        flash.add(
            request.session,
            "warning",
            f"{label} not applied: the plan changed since you opened the form.",
            f"It is now {str(exc.extra.get('current_state', '?')).replace('_', ' ')}"
            f" (version {exc.extra.get('current_version', '?')}). Check it and try again.",
        )
    except TransitionRefusedError as exc:
        _refused(request, label, exc)
    except UnavailableError as exc:
        flash.add(request.session, "error", f"{label} failed: {exc.detail}")
    else:
        phase_note = f" (phase {parsed.phase})" if parsed.phase else ""
        flash.add(
            request.session,
            "success",
            f"{label}{phase_note}: done.",
            f"The plan is now {view.row.state.replace('_', ' ')} (version {view.row.version}).",
        )
    return RedirectResponse(_plan_url(request, plan_id), status_code=303)


@router.post("/plans/{plan_id}/preflight", name="plan_preflight")
async def run_preflight(
    request: Request, plan_id: str, caller: RequireOperator, form: CsrfForm, ctx: ContextDep
) -> Response:
    """Run the preflight checks now; they are recorded in the history and change nothing."""
    report = await actions.preflight(
        EngineContext.from_app(ctx), plan_id=plan_id, actor=caller.actor
    )
    if report.passed:
        flash.add(request.session, "success", "Preflight passed.")
    else:
        flash.add(
            request.session,
            "error",
            "Preflight failed.",
            "These checks would refuse a start:",
            [f"{c.name}: {c.detail}" for c in report.failures()],
        )
    return RedirectResponse(_plan_url(request, plan_id), status_code=303)
