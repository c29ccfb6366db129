"""Who a phase's comms mail goes to, and with which roles, for the per-recipient preview.

Once the phase has fixed its conversions the answer is its work items (what the comms step
mails). Before that it is worked out from the live tenant the way the dry run does: the
standing assignments of the target roles, each conversion step of the plan up to the phase
replayed in order, so the phase's ``remaining`` cohort excludes those converted earlier.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlmodel import Session

from app.db.models import Tenant
from app.domain.cohort import ConversionStep, PrincipalType, replay_conversions
from app.domain.plan import ConvertCohortStep, PlanSpec
from app.domain.roles import LAST_ACTIVE_PROTECTED
from app.domain.tenant import GraphLimits
from app.engine.context import EngineContext
from app.engine.live import cohort_members, permanent_holdings
from app.graph.errors import GraphError
from app.problems import UnavailableError
from app.services import tenants
from app.services.comms import RenderedComms
from app.services.comms_preview import (
    CommsRecipient,
    comms_phase,
    find_recipient,
    group_recipients,
    render_phase_comms,
    stored_recipients,
)
from app.services.plans import effective_bindings, get_plan_row


@dataclass(frozen=True)
class _Loaded:
    spec: PlanSpec
    tenant: Tenant
    binding_overrides: dict[str, object]
    stored: list[CommsRecipient] | None


async def phase_recipients(
    ectx: EngineContext, *, plan_id: str, phase_key: str
) -> list[CommsRecipient]:
    """The phase's recipients, by name. 404 for an unknown plan or a phase without comms;
    503 when the live tenant cannot be read."""

    def load(session: Session) -> _Loaded:
        plan = get_plan_row(session, plan_id)
        spec = PlanSpec.model_validate(plan.spec)
        comms_phase(spec, plan_id, phase_key)
        return _Loaded(
            spec=spec,
            tenant=tenants.get_tenant(session, plan.tenant_id),
            binding_overrides=dict(plan.binding_overrides),
            stored=stored_recipients(session, plan_id=plan_id, phase_key=phase_key),
        )

    loaded = await ectx.db.read(load)
    if loaded.stored is not None:
        return loaded.stored
    try:
        return await _live_recipients(ectx, loaded, phase_key)
    except GraphError as exc:
        raise UnavailableError(
            f"the phase's recipients could not be read from the tenant: "
            f"{exc.code or exc.status}: {exc.message}"
        ) from None


async def _live_recipients(
    ectx: EngineContext, loaded: _Loaded, phase_key: str
) -> list[CommsRecipient]:
    spec, tenant = loaded.spec, loaded.tenant
    client = await ectx.client_for(tenant)
    bindings = effective_bindings(tenant, loaded.binding_overrides)
    converts: list[tuple[str, ConvertCohortStep]] = []
    for phase in spec.phases:
        converts += [(phase.key, s) for s in phase.steps if isinstance(s, ConvertCohortStep)]
        if phase.key == phase_key:
            break

    # Independent reads, each a few round trips: run them at once; one failing stops the rest.
    holdings_task = asyncio.ensure_future(
        permanent_holdings(
            client,
            [str(r) for r in spec.role_ids()],
            limit=GraphLimits.model_validate(tenant.graph_limits).max_concurrency,
        )
    )
    cohort_tasks = [
        asyncio.ensure_future(cohort_members(client, step.cohort, bindings)) for _, step in converts
    ]
    reads = [holdings_task, *cohort_tasks]
    try:
        await asyncio.gather(*reads)
    finally:
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
    holdings = holdings_task.result()
    cohorts = [task.result() for task in cohort_tasks]
    steps = [
        ConversionStep(key, [str(r) for r in spec.role_ids(step.roles)], members)
        for (key, step), members in zip(converts, cohorts, strict=True)
    ]
    converted = replay_conversions(
        holdings,
        steps,
        break_glass=set(tenant.break_glass_ids),
        protected=LAST_ACTIVE_PROTECTED,
    ).get(phase_key, [])
    return group_recipients(
        (
            (h.principal_id, h.principal_name, h.principal_upn, h.role_definition_id)
            for h in converted
            if h.principal_type == PrincipalType.user
        ),
        role_order=[str(r) for r in spec.role_ids()],
    )


async def render_comms(
    ectx: EngineContext,
    *,
    plan_id: str,
    phase_key: str,
    public_url: str,
    recipient: CommsRecipient | None,
) -> RenderedComms:
    """The phase's comms, rendered now: ``recipient``'s own mail, or the overview page."""
    return await ectx.db.read(
        lambda session: render_phase_comms(
            session,
            plan_id=plan_id,
            phase_key=phase_key,
            public_url=public_url,
            recipient=recipient,
        )
    )


async def comms_for(
    ectx: EngineContext, *, plan_id: str, phase_key: str, public_url: str, wanted: str | None
) -> tuple[RenderedComms, CommsRecipient | None]:
    """The mail ``wanted`` (an object id or UPN) gets from the phase, or the overview without
    one. Someone the phase does not mail is a 404 naming them."""
    chosen = None
    if wanted is not None:
        recipients = await phase_recipients(ectx, plan_id=plan_id, phase_key=phase_key)
        chosen = find_recipient(recipients, wanted, phase_key=phase_key)
    rendered = await render_comms(
        ectx, plan_id=plan_id, phase_key=phase_key, public_url=public_url, recipient=chosen
    )
    return rendered, chosen
