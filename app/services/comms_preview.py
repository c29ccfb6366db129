"""The comms as a phase would send it: the overview page, or one recipient's own mail.

The public page (``/comms/{plan}/{phase}``) lists every role the phase converts; each
recipient's mail lists only the roles that person held and now activates. Once a phase has
fixed its conversions (its work items), its recipients are read from them, exactly as the comms
step mails them; before that, the engine works them out from the live tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.db.models import Plan, Tenant, WorkItem
from app.db.repos.plans import PlanRepository
from app.db.repos.work_items import WorkItemRepository
from app.domain.plan import ConvertCohortStep, PhaseSpec, PlanSpec, SendCommsStep
from app.domain.progress import WorkItemState
from app.domain.roles import role_name
from app.domain.tenant import CommsSettings
from app.problems import InvalidInputError, NotFoundError
from app.services.comms import CommsRenderer, CommsRenderError, RenderedComms, comms_context
from app.services.plans import get_plan_row

# Items that do not change for their holder are not announced: a service principal or a
# personal Microsoft account stays Active (skipped), and so does the last active GA/PRA holder.
NOT_ANNOUNCED = frozenset({WorkItemState.skipped.value, WorkItemState.kept_active.value})


@dataclass(frozen=True)
class CommsRecipient:
    """Someone a phase's comms mail goes to, with the target roles their mail lists."""

    id: str
    name: str | None
    upn: str | None
    roles: tuple[str, ...]
    """Role template ids in plan order."""

    def matches(self, wanted: str) -> bool:
        """By object id, or by user principal name (without regard to case)."""
        wanted = wanted.strip().lower()
        return wanted in {self.id.lower(), (self.upn or "").lower()}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "upn": self.upn,
            "roles": [{"id": role, "name": role_name(role)} for role in self.roles],
        }


def comms_page_url(public_url: str, plan_id: str, phase_key: str) -> str:
    return f"{public_url.rstrip('/')}/comms/{plan_id}/{phase_key}"


def comms_phase(spec: PlanSpec, plan_id: str, phase_key: str) -> tuple[PhaseSpec, int]:
    """The phase and the index of its ``send_comms`` step; 404 when it has none."""
    phase = spec.phase(phase_key)
    if phase is None:
        raise NotFoundError(f"plan {plan_id} has no phase {phase_key!r}")
    index = next((i for i, s in enumerate(phase.steps) if isinstance(s, SendCommsStep)), None)
    if index is None:
        raise NotFoundError(f"phase {phase_key!r} sends no comms")
    return phase, index


Held = tuple[str, str | None, str | None, str]
"""(principal id, display name, user principal name, role template id)."""


def group_recipients(held: Iterable[Held], *, role_order: Sequence[str]) -> list[CommsRecipient]:
    """One recipient per person, their roles in plan order; people sorted by name."""
    roles: dict[str, list[str]] = {}
    names: dict[str, tuple[str | None, str | None]] = {}
    for principal_id, name, upn, role in held:
        roles.setdefault(principal_id, []).append(role)
        names.setdefault(principal_id, (name, upn))
    rank = {role: index for index, role in enumerate(role_order)}
    people = [
        CommsRecipient(
            id=principal_id,
            name=names[principal_id][0],
            upn=names[principal_id][1],
            roles=tuple(sorted(dict.fromkeys(held_roles), key=lambda r: rank.get(r, len(rank)))),
        )
        for principal_id, held_roles in roles.items()
    ]
    return sorted(people, key=lambda r: ((r.name or r.upn or r.id).lower(), r.id))


def recipients_from_items(
    items: Sequence[WorkItem], *, before_step: int, role_order: Sequence[str]
) -> list[CommsRecipient]:
    """Users whose standing access the phase's conversions (ahead of its comms) turn Eligible."""
    return group_recipients(
        (
            (item.principal_id, item.principal_name, item.principal_upn, item.role_definition_id)
            for item in items
            if item.principal_type == "user"
            and item.step_index <= before_step
            and item.state not in NOT_ANNOUNCED
        ),
        role_order=role_order,
    )


def stored_recipients(
    session: Session, *, plan_id: str, phase_key: str
) -> list[CommsRecipient] | None:
    """The phase's recipients from its work items; None before it has fixed its conversions."""
    plan = get_plan_row(session, plan_id)
    spec = PlanSpec.model_validate(plan.spec)
    _, send_index = comms_phase(spec, plan_id, phase_key)
    items = WorkItemRepository(session).list_items(plan_id, phase_key=phase_key)
    if not items:
        return None
    return recipients_from_items(
        items, before_step=send_index, role_order=[str(r) for r in spec.role_ids()]
    )


def find_recipient(
    recipients: Sequence[CommsRecipient], wanted: str, *, phase_key: str
) -> CommsRecipient:
    found = next((r for r in recipients if r.matches(wanted)), None)
    if found is None:
        raise NotFoundError(
            f"{wanted!r} gets no comms in phase {phase_key!r}: the phase converts no standing "
            "role of theirs (give a recipient's object id or user principal name)",
            recipient=wanted,
        )
    return found


def render_phase_comms(
    session: Session,
    *,
    plan_id: str,
    phase_key: str,
    public_url: str,
    renderer: CommsRenderer | None = None,
    recipient: CommsRecipient | None = None,
) -> RenderedComms:
    """Render a phase's comms: one recipient's mail, or the overview of every role it covers."""
    plan: Plan = get_plan_row(session, plan_id)
    spec = PlanSpec.model_validate(plan.spec)
    phase, send_index = comms_phase(spec, plan_id, phase_key)
    step = phase.steps[send_index]
    assert isinstance(step, SendCommsStep)
    if recipient is not None:
        roles = list(recipient.roles)
    else:
        roles = []
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
            recipient_name=recipient.name if recipient else None,
            roles=list(dict.fromkeys(roles)),
            effective_from=effective_from,
            page_url=comms_page_url(public_url, plan_id, phase_key),
            personal=recipient is not None,
        )
        return (renderer or CommsRenderer()).render(step.template, step.subject, context)
    except CommsRenderError as exc:
        raise InvalidInputError(
            f"the comms cannot be rendered: {exc}", [("comms", str(exc))]
        ) from None
