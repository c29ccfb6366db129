"""Reads of the tenant's live state that several steps, preflight and preview share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from app.domain.cohort import Holding, PrincipalType
from app.domain.plan import Cohort, PrincipalRef
from app.domain.tenant import (
    Binding,
    GroupBinding,
    MailboxBinding,
    RoleOwnersBinding,
    UsersBinding,
)
from app.graph.client import LARGE_PAGE, GraphClient
from app.graph.errors import GraphError, GraphNotFoundError

T = TypeVar("T")
R = TypeVar("R")


async def gather_bounded(
    items: Iterable[T], work: Callable[[T], Awaitable[R]], *, limit: int = 8
) -> list[R]:
    """Run ``work`` over ``items`` with at most ``limit`` at once, results in input order.

    When one fails, the others are cancelled before the error is raised: a caller that gives up
    (a lost lease, a failed phase) leaves no work running behind it.
    """
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with gate:
            return await work(item)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def permanent_holdings(
    client: GraphClient, role_ids: Sequence[str], *, limit: int = 8
) -> list[Holding]:
    """Every permanent Active assignment of ``role_ids`` (PIM's view: schedule instances)."""

    async def for_role(role_id: str) -> list[Holding]:
        found = []
        async for instance in client.iter_assignment_schedule_instances(
            role_definition_id=role_id,
            assignment_type="Assigned",
            expand_principal=True,
            top=LARGE_PAGE,
        ):
            if instance.end_date_time is not None:
                continue
            principal = instance.principal
            found.append(
                Holding(
                    principal_id=instance.principal_id,
                    principal_type=principal.principal_type if principal else "unknown",
                    role_definition_id=instance.role_definition_id,
                    directory_scope_id=instance.directory_scope_id or "/",
                    assignment_id=instance.role_assignment_origin_id or instance.id,
                    principal_name=principal.display_name if principal else None,
                    principal_upn=principal.user_principal_name if principal else None,
                    member_type=instance.member_type or "Direct",
                    created_outside_pim=instance.start_date_time is None,
                )
            )
        return found

    per_role = await gather_bounded(role_ids, for_role, limit=limit)
    holdings = [holding for holdings in per_role for holding in holdings]
    consumer = await microsoft_account_users(client, holdings)
    return [
        replace(h, microsoft_account=True) if h.principal_id in consumer else h for h in holdings
    ]


async def microsoft_account_users(client: GraphClient, holdings: Sequence[Holding]) -> set[str]:
    """Users among the holders who sign in with a personal Microsoft account.

    Such accounts are always external (``#EXT#`` in the UPN), so only those are looked up;
    ``identities`` is not in the expanded principal and needs its own ``$select``.
    """
    candidates = sorted(
        {
            h.principal_id
            for h in holdings
            if h.principal_type == PrincipalType.user and "#EXT#" in (h.principal_upn or "#EXT#")
        }
    )

    found = await client.get_users(candidates, select=("id", "userType", "identities"))
    consumer: set[str] = set()
    for principal_id, user in found.items():
        if isinstance(user, GraphNotFoundError):
            continue  # not a user after all (or gone): nothing to keep
        if isinstance(user, GraphError):
            raise user
        if user.signs_in_with_microsoft_account:
            consumer.add(principal_id)
    return consumer


async def eligible_principals(client: GraphClient, role_id: str) -> dict[tuple[str, str], str]:
    """(principal, scope) -> eligibility schedule id, for one role."""
    found: dict[tuple[str, str], str] = {}
    async for schedule in client.iter_eligibility_schedules(
        role_definition_id=role_id, top=LARGE_PAGE
    ):
        found[(schedule.principal_id, schedule.directory_scope_id or "/")] = schedule.id
    return found


async def active_holders(client: GraphClient, role_id: str) -> set[str]:
    """Everyone with any active assignment of the role now (assigned or activated)."""
    return {
        instance.principal_id
        async for instance in client.iter_assignment_schedule_instances(
            role_definition_id=role_id, top=LARGE_PAGE
        )
    }


async def group_member_ids(client: GraphClient, group_id: str) -> set[str]:
    return {member.id async for member in client.iter_group_transitive_members(group_id)}


async def binding_members(client: GraphClient, binding: Binding) -> set[str]:
    if isinstance(binding, GroupBinding):
        return await group_member_ids(client, str(binding.id))
    if isinstance(binding, UsersBinding):
        return {str(i) for i in binding.ids}
    if isinstance(binding, MailboxBinding):
        return set()  # addresses, not directory objects (plan creation refuses it as a cohort)
    owners = {str(u) for u in binding.owners.values()}
    if binding.fallback is not None:
        owners.add(str(binding.fallback))
    return owners


async def cohort_members(
    client: GraphClient, cohort: Cohort, bindings: Mapping[str, Binding]
) -> set[str] | None:
    """Who a conversion step's cohort names; None for ``remaining`` (every holder left)."""
    if cohort.binding is not None:
        return await binding_members(client, bindings[cohort.binding])
    if cohort.principals is not None:
        return {str(p) for p in cohort.principals}
    return None


@dataclass(frozen=True)
class ResolvedApprovers:
    subjects: list[tuple[str, str]]  # ("user"|"group", object id) for the policy rule
    people: set[str]  # every person who could approve


async def resolve_approvers(
    client: GraphClient, refs: Sequence[PrincipalRef], bindings: Mapping[str, Binding]
) -> ResolvedApprovers:
    subjects: list[tuple[str, str]] = []
    people: set[str] = set()
    for ref in refs:
        if ref.user is not None:
            subjects.append(("user", str(ref.user)))
            people.add(str(ref.user))
        elif ref.group is not None:
            subjects.append(("group", str(ref.group)))
            people |= await group_member_ids(client, str(ref.group))
        elif ref.binding is not None:
            binding = bindings[ref.binding]
            if isinstance(binding, GroupBinding):
                subjects.append(("group", str(binding.id)))
                people |= await group_member_ids(client, str(binding.id))
            elif isinstance(binding, UsersBinding):
                for user in binding.ids:
                    subjects.append(("user", str(user)))
                    people.add(str(user))
            elif isinstance(binding, RoleOwnersBinding):
                for owner in sorted({str(u) for u in binding.owners.values()}):
                    subjects.append(("user", owner))
                    people.add(owner)
    return ResolvedApprovers(subjects=list(dict.fromkeys(subjects)), people=people)


async def role_rules(client: GraphClient, role_id: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The role's policy id and its rules as Graph sends them (JSON), keyed by rule id.

    One round trip: the assignment with ``$expand=policy($expand=rules)`` (reference §7.1); the
    rules are listed separately only if Graph did not expand them.
    """
    assignment = await client.get_policy_assignment(role_id, expand_rules=True)
    policy = assignment.policy
    rules = policy.rules if policy is not None and policy.rules else None
    if rules is None:
        rules = await client.list_policy_rules(assignment.policy_id)
    return assignment.policy_id, {rule.id: rule.to_patch_body() for rule in rules}
