"""The posture report: read the tenant through Graph, evaluate MS.AAD.7, record the result.

A reading covers the highly privileged roles in scope (and Global Administrator always): active
assignments as PIM sees them (schedule instances) and the directory's own role assignments
(which show assignments with no PIM schedule at all), eligibilities, the members of role-holding
groups, each holder's ``onPremisesSyncEnabled`` and each role's PIM settings. Nothing is
written to the tenant.

One reading gives two reports: CISA's scope (its list of highly privileged roles) for the
tenant, and, when the reading is for a plan, the plan's target roles, so a plan's before and
after compare like with like.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlmodel import Session

from app.db.models import Plan, PostureReport, Tenant
from app.db.repos.posture import PostureRepository
from app.domain.machine import PlanState
from app.domain.plan import PlanSpec
from app.domain.posture import (
    Account,
    Grant,
    PostureReading,
    evaluate,
    plan_actions,
    summarize,
    with_plan,
)
from app.domain.roles import CISA_HIGHLY_PRIVILEGED, GLOBAL_ADMINISTRATOR, role_name
from app.domain.tenant import MailboxBinding
from app.engine.context import EngineContext
from app.engine.live import gather_bounded, role_rules
from app.graph.client import GraphClient
from app.graph.errors import GraphError, GraphNotFoundError
from app.graph.models import DirectoryObject
from app.logging import get_logger
from app.services.plans import effective_bindings

log = get_logger(__name__)

SECURITY_MAILBOX = "security_team_mailbox"
Scope = Literal["cisa", "plan"]
Trigger = Literal["on_demand", "baseline", "phase_completed", "rolled_back"]
ProgressReport = Callable[[str, int, int], None]
LIVE_PLAN_STATES = frozenset(
    {
        PlanState.draft.value,
        PlanState.scheduled.value,
        PlanState.running.value,
        PlanState.paused.value,
        PlanState.failed.value,
        PlanState.completed.value,
    }
)


class PostureReadError(Exception):
    pass


@dataclass(frozen=True)
class RawReading:
    """What was read, before a scope is chosen."""

    defined_roles: frozenset[str]
    grants: tuple[Grant, ...]
    group_members: Mapping[str, tuple[str, ...]]
    accounts: Mapping[str, Account]
    rules: Mapping[str, Mapping[str, Mapping[str, Any]]]


async def read_tenant(
    client: GraphClient, roles: Sequence[str], *, progress: ProgressReport | None = None
) -> RawReading:
    """Read everything MS.AAD.7 needs about ``roles`` (plus Global Administrator)."""
    defined = frozenset(r.id.lower() for r in await client.list_role_definitions())
    wanted = [r for r in dict.fromkeys([GLOBAL_ADMINISTRATOR, *roles]) if r in defined]
    finished = 0

    async def one_role(role_id: str) -> tuple[list[Grant], dict[str, Any]]:
        nonlocal finished
        grants = await _grants(client, role_id)
        _, rules = await role_rules(client, role_id)
        finished += 1
        if progress is not None:
            progress("posture: roles read", finished, len(wanted))
        return grants, rules

    if progress is not None:
        progress("posture: roles read", 0, len(wanted))
    per_role = await gather_bounded(wanted, one_role, limit=8)
    grants = tuple(g for role_grants, _ in per_role for g in role_grants)
    groups = sorted({g.principal_id for g in grants if g.principal_type == "group"})
    members = dict(
        zip(groups, await gather_bounded(groups, lambda g: _members(client, g)), strict=True)
    )
    users = {g.principal_id for g in grants if g.principal_type == "user"}
    users.update(u for group_users in members.values() for u in group_users)
    if progress is not None:
        progress("posture: accounts read", 0, len(users))
    accounts = await _accounts(client, sorted(users))
    return RawReading(
        defined_roles=defined,
        grants=grants,
        group_members=members,
        accounts=accounts,
        rules={role: rules for role, (_, rules) in zip(wanted, per_role, strict=True)},
    )


def _principal(obj: DirectoryObject | None) -> tuple[str, str | None]:
    if obj is None:
        return "unknown", None
    return obj.principal_type, obj.display_name


async def _grants(client: GraphClient, role_id: str) -> list[Grant]:
    grants: list[Grant] = []
    seen: set[tuple[str, str]] = set()
    async for instance in client.iter_assignment_schedule_instances(
        role_definition_id=role_id, expand_principal=True
    ):
        kind, name = _principal(instance.principal)
        seen.add((instance.principal_id, instance.directory_scope_id or "/"))
        grants.append(
            Grant(
                principal_id=instance.principal_id,
                principal_type=kind,
                principal_name=name,
                role_id=role_id,
                kind="active",
                permanent=instance.end_date_time is None,
                activated=instance.is_activated,
                outside_pim=not instance.is_activated and instance.start_date_time is None,
            )
        )
    # Direct assignments PIM's endpoints do not show in some tenants (domain facts): no
    # schedule at all means it was made outside PIM.
    async for assignment in client.iter_role_assignments(
        role_definition_id=role_id, expand_principal=True
    ):
        if (assignment.principal_id, assignment.directory_scope_id or "/") in seen:
            continue
        kind, name = _principal(assignment.principal)
        grants.append(
            Grant(
                principal_id=assignment.principal_id,
                principal_type=kind,
                principal_name=name,
                role_id=role_id,
                kind="active",
                permanent=True,
                outside_pim=True,
            )
        )
    async for eligibility in client.iter_eligibility_schedule_instances(
        role_definition_id=role_id, expand_principal=True
    ):
        kind, name = _principal(eligibility.principal)
        grants.append(
            Grant(
                principal_id=eligibility.principal_id,
                principal_type=kind,
                principal_name=name,
                role_id=role_id,
                kind="eligible",
                permanent=eligibility.end_date_time is None,
            )
        )
    return grants


async def _members(client: GraphClient, group_id: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            {
                member.id
                async for member in client.iter_group_transitive_members(group_id)
                if member.principal_type == "user"
            }
        )
    )


async def _accounts(client: GraphClient, user_ids: Sequence[str]) -> dict[str, Account]:
    found = await client.get_users(user_ids, select=("id", "displayName", "onPremisesSyncEnabled"))
    accounts: dict[str, Account] = {}
    for user_id, user in found.items():
        if isinstance(user, GraphNotFoundError):
            continue
        if isinstance(user, GraphError):
            raise user
        accounts[user_id] = Account(
            user_id, user.display_name, synced=user.on_premises_sync_enabled is True
        )
    return accounts


def scoped(
    raw: RawReading, roles: Sequence[str], *, break_glass: Sequence[str], mailboxes: Sequence[str]
) -> PostureReading:
    return PostureReading(
        roles=tuple(r for r in roles if r in raw.defined_roles),
        grants=raw.grants,
        group_members=raw.group_members,
        accounts=raw.accounts,
        rules=raw.rules,
        break_glass=frozenset(break_glass),
        mailboxes=tuple(mailboxes),
    )


def security_mailboxes(tenant: Tenant, plan: Plan | None) -> list[str]:
    """The addresses alerts must reach: the ``security_team_mailbox`` binding, if bound."""
    bindings = effective_bindings(tenant, plan.binding_overrides if plan else {})
    binding = bindings.get(SECURITY_MAILBOX)
    return list(binding.addresses) if isinstance(binding, MailboxBinding) else []


def build_report(
    raw: RawReading,
    *,
    tenant: Tenant,
    plan: Plan | None,
    scope: Scope,
    trigger: Trigger,
    phase_key: str | None,
    actor: str,
    at: datetime,
) -> PostureReport:
    """One report row: the policies evaluated in ``scope``, with what ``plan`` does about them."""
    spec = PlanSpec.model_validate(plan.spec) if plan is not None else None
    roles = (
        [str(r) for r in spec.role_ids()]
        if scope == "plan" and spec is not None
        else list(CISA_HIGHLY_PRIVILEGED)
    )
    reading = scoped(
        raw,
        roles,
        break_glass=tenant.break_glass_ids,
        mailboxes=security_mailboxes(tenant, plan),
    )
    rows = evaluate(reading)
    if spec is not None:
        rows = with_plan(rows, plan_actions(spec, list(reading.roles)))
    return PostureReport(
        tenant_id=tenant.id,
        plan_id=plan.id if plan is not None else None,
        scope=scope,
        trigger=trigger,
        phase_key=phase_key,
        actor=actor,
        taken_at=at,
        roles=[{"id": r, "name": role_name(r)} for r in reading.roles],
        roles_not_in_tenant=[
            {"id": r, "name": role_name(r)} for r in roles if r not in raw.defined_roles
        ],
        mailboxes=list(reading.mailboxes),
        summary=summarize(rows),
        rows=[row.to_json() for row in rows],
    )


async def take_posture(
    ectx: EngineContext,
    tenant: Tenant,
    *,
    plan: Plan | None = None,
    trigger: Trigger = "on_demand",
    phase_key: str | None = None,
    actor: str,
    progress: ProgressReport | None = None,
) -> list[PostureReport]:
    """Read the tenant once and record its reports: CISA's scope, and the plan's when a plan is
    given (its own, or else the tenant's current plan supplies the "what the plan does")."""
    if plan is None:
        plan = await ectx.db.read(
            lambda session: PostureRepository(session).current_plan(tenant.id, LIVE_PLAN_STATES)
        )
        for_plan = False
    else:
        for_plan = True
    client = await ectx.client_for(tenant)
    roles = list(CISA_HIGHLY_PRIVILEGED)
    if plan is not None:
        roles += [str(r) for r in PlanSpec.model_validate(plan.spec).role_ids()]
    try:
        raw = await read_tenant(client, list(dict.fromkeys(roles)), progress=progress)
    except GraphError as exc:
        raise PostureReadError(
            f"the tenant could not be read: {exc.code or exc.status}: {exc.message}"
        ) from exc
    at = ectx.clock.now()
    scopes: list[Scope] = ["cisa", "plan"] if for_plan else ["cisa"]

    def build() -> list[PostureReport]:
        return [
            build_report(
                raw,
                tenant=tenant,
                plan=plan,
                scope=scope,
                trigger=trigger,
                phase_key=phase_key,
                actor=actor,
                at=at,
            )
            for scope in scopes
        ]

    # Evaluating thousands of assignments is CPU work: off the event loop.
    reports = await asyncio.to_thread(build)

    def record(session: Session) -> list[PostureReport]:
        repo = PostureRepository(session)
        return [repo.add(report) for report in reports]

    saved = await ectx.db.write(record)
    log.info(
        "engine.posture.taken",
        tenant_id=tenant.id,
        plan_id=plan.id if for_plan and plan else None,
        trigger=trigger,
        failing=[r.summary.get("fail", 0) for r in saved],
    )
    return saved
