"""The comms as a phase would send it, for the preview endpoint and the stable page URL."""

from __future__ import annotations

from sqlmodel import Session

from app.db.models import Plan, Tenant
from app.db.repos.plans import PlanRepository
from app.domain.plan import ConvertCohortStep, PlanSpec, SendCommsStep
from app.domain.tenant import CommsSettings
from app.problems import InvalidInputError, NotFoundError
from app.services.comms import CommsRenderer, CommsRenderError, RenderedComms, comms_context
from app.services.plans import get_plan_row


def comms_page_url(public_url: str, plan_id: str, phase_key: str) -> str:
    return f"{public_url.rstrip('/')}/comms/{plan_id}/{phase_key}"


def render_phase_comms(
    session: Session,
    *,
    plan_id: str,
    phase_key: str,
    public_url: str,
    renderer: CommsRenderer | None = None,
    recipient_name: str | None = None,
) -> RenderedComms:
    """Render a phase's comms for every role its conversions cover (no recipient specifics)."""
    plan: Plan = get_plan_row(session, plan_id)
    spec = PlanSpec.model_validate(plan.spec)
    phase = spec.phase(phase_key)
    if phase is None:
        raise NotFoundError(f"plan {plan_id} has no phase {phase_key!r}")
    step = next((s for s in phase.steps if isinstance(s, SendCommsStep)), None)
    if step is None:
        raise NotFoundError(f"phase {phase_key!r} sends no comms")
    roles: list[str] = []
    for candidate in phase.steps:
        if isinstance(candidate, ConvertCohortStep):
            roles += [str(r) for r in spec.role_ids(candidate.roles)]
    tenant = session.get(Tenant, plan.tenant_id)
    if tenant is None:
        raise NotFoundError(f"the plan's tenant {plan.tenant_id} no longer exists")
    phase_row = next(
        (p for p in PlanRepository(session).phases(plan_id) if p.key == phase_key), None
    )
    effective_from = phase_row.started_at or phase_row.due_at if phase_row else None
    try:
        context = comms_context(
            spec=spec,
            phase_key=phase_key,
            comms=CommsSettings.model_validate(tenant.comms),
            tenant_name=tenant.name,
            recipient_name=recipient_name,
            roles=list(dict.fromkeys(roles)),
            effective_from=effective_from,
            page_url=comms_page_url(public_url, plan_id, phase_key),
        )
        return (renderer or CommsRenderer()).render(step.template, step.subject, context)
    except CommsRenderError as exc:
        raise InvalidInputError(
            f"the comms cannot be rendered: {exc}", [("comms", str(exc))]
        ) from None
