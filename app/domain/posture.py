"""CISA SCuBA MS.AAD.7 (highly privileged user access) as pure checks over one reading.

Each policy is evaluated from what a reading of the tenant holds: who has which highly
privileged role (active or eligible, directly or through a group), whether accounts are synced
from on-premises, and each role's PIM settings. The policies are CISA's (cisagov/ScubaGear,
``baselines/aad.md``, section 7); the one-line summaries below are ours. Where CISA leaves a
threshold to the assessor it is stated, with its source, next to the check.

What a plan does about each policy is derived from its spec (:func:`plan_actions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from app.domain.plan import (
    ConvertCohortStep,
    CreateAccessReviewsStep,
    PlanSpec,
    RequireApprovalStep,
    SetNotificationRulesStep,
)
from app.domain.roles import GLOBAL_ADMINISTRATOR, role_name
from app.domain.rules import APPROVAL_END_USER, notification_reaches

ASSIGNMENT_ALERT = "Notification_Admin_Admin_Assignment"
ELIGIBILITY_ALERT = "Notification_Admin_Admin_Eligibility"
ACTIVATION_ALERT = "Notification_Admin_EndUser_Assignment"

MIN_GLOBAL_ADMINS = 2
MAX_GLOBAL_ADMINS = 8
MAX_GLOBAL_ADMIN_RATIO = 1.0
"""MS.AAD.7.2 leaves "finer-grained roles" to the assessor. We use the ratio ScubaGear's
baseline gives in its remediation for 7.2v1 (and Maester's Test-MtCisaGlobalAdminRatio
implements): users holding Global Administrator divided by users holding only other highly
privileged roles must be at most 1, i.e. Global Administrators are at most half of the
privileged users."""

POLICIES: dict[str, str] = {
    "MS.AAD.7.1": "Between two and eight users hold Global Administrator.",
    "MS.AAD.7.2": "Admins get narrower roles: no more Global Administrators than users who "
    "hold only other highly privileged roles.",
    "MS.AAD.7.3": "Accounts holding highly privileged roles are cloud-only, not synced from "
    "an on-premises directory.",
    "MS.AAD.7.4": "Only break-glass accounts keep a highly privileged role as a permanent "
    "Active assignment.",
    "MS.AAD.7.5": "Highly privileged roles are given through PIM, not assigned directly.",
    "MS.AAD.7.6": "Activating Global Administrator needs an approver's yes.",
    "MS.AAD.7.7": "Making someone eligible for or active in a highly privileged role mails "
    "the security team.",
    "MS.AAD.7.8": "Activating Global Administrator mails the security team.",
    "MS.AAD.7.9": "Activating any other highly privileged role mails the security team.",
}


class PostureResult(StrEnum):
    passed = "pass"
    failed = "fail"
    not_applicable = "not_applicable"


@dataclass(frozen=True)
class Grant:
    """One assignment of a role to a principal, as PIM (or the directory) shows it now."""

    principal_id: str
    principal_type: str  # user, group, servicePrincipal, unknown
    principal_name: str | None
    role_id: str
    kind: Literal["active", "eligible"]
    permanent: bool  # no end date
    activated: bool = False  # an Active assignment that is a PIM activation of an eligibility
    outside_pim: bool = False  # Active, made outside PIM (no start date, or no schedule at all)


@dataclass(frozen=True)
class Account:
    id: str
    name: str | None
    synced: bool  # onPremisesSyncEnabled is true


@dataclass(frozen=True)
class PostureReading:
    roles: tuple[str, ...]
    """The highly privileged roles in scope that the tenant defines."""
    grants: tuple[Grant, ...]
    group_members: Mapping[str, tuple[str, ...]]
    """Role-holding group -> the users in it (transitively)."""
    accounts: Mapping[str, Account]
    rules: Mapping[str, Mapping[str, Mapping[str, Any]]]
    """Role -> its policy rules as Graph sends them (Global Administrator always read)."""
    break_glass: frozenset[str]
    mailboxes: tuple[str, ...]
    """Where alerts must go; empty: any recipient will do."""


@dataclass(frozen=True)
class Item:
    """Something that makes a policy fail (or an exception noted): a principal or a role."""

    id: str
    name: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "detail": self.detail}


@dataclass(frozen=True)
class PolicyRow:
    policy_id: str
    result: PostureResult
    detail: str
    counts: dict[str, int] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    plan: str | None = None

    @property
    def policy(self) -> str:
        return POLICIES[self.policy_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy_id": self.policy_id,
            "policy": self.policy,
            "result": self.result.value,
            "detail": self.detail,
            "counts": dict(self.counts),
            "items": [item.to_json() for item in self.items],
            "plan": self.plan,
        }


# --- who holds what --------------------------------------------------------------------------


def _users_by_role(reading: PostureReading) -> dict[str, set[str]]:
    """Role -> users holding it actively or eligibly, directly or through a group."""
    holders: dict[str, set[str]] = {}
    for grant in reading.grants:
        users = holders.setdefault(grant.role_id, set())
        if grant.principal_type == "user":
            users.add(grant.principal_id)
        elif grant.principal_type == "group":
            users.update(reading.group_members.get(grant.principal_id, ()))
    return holders


def _name(reading: PostureReading, principal_id: str) -> str:
    account = reading.accounts.get(principal_id)
    if account is not None and account.name:
        return account.name
    for grant in reading.grants:
        if grant.principal_id == principal_id and grant.principal_name:
            return grant.principal_name
    return principal_id


def _people(reading: PostureReading, ids: Iterable[str], detail: str) -> list[Item]:
    items = [Item(i, _name(reading, i), detail) for i in ids]
    return sorted(items, key=lambda item: (item.name.casefold(), item.id))


def _roles_text(role_ids: Iterable[str]) -> str:
    return ", ".join(sorted(role_name(r) for r in role_ids))


# --- the policies ----------------------------------------------------------------------------


def _global_admin_count(reading: PostureReading, ga: set[str]) -> PolicyRow:
    break_glass = len(ga & reading.break_glass)
    counts = {"global_administrators": len(ga), "break_glass": break_glass}
    text = f"{len(ga)} user(s) hold Global Administrator ({break_glass} break-glass)"
    if MIN_GLOBAL_ADMINS <= len(ga) <= MAX_GLOBAL_ADMINS:
        return PolicyRow("MS.AAD.7.1", PostureResult.passed, text, counts)
    if len(ga) < MIN_GLOBAL_ADMINS:
        return PolicyRow(
            "MS.AAD.7.1", PostureResult.failed, f"{text}; at least {MIN_GLOBAL_ADMINS}", counts
        )
    items = _people(reading, ga - reading.break_glass, "holds Global Administrator")
    return PolicyRow(
        "MS.AAD.7.1",
        PostureResult.failed,
        f"{text}; at most {MAX_GLOBAL_ADMINS}",
        counts,
        items,
    )


def _global_admin_ratio(reading: PostureReading, by_role: Mapping[str, set[str]]) -> PolicyRow:
    ga = by_role.get(GLOBAL_ADMINISTRATOR, set())
    others = set().union(
        *(users for role, users in by_role.items() if role != GLOBAL_ADMINISTRATOR)
    )
    others -= ga  # someone holding both counts as a Global Administrator only
    counts = {"global_administrators": len(ga), "other_privileged_users": len(others)}
    if not ga and not others:
        return PolicyRow(
            "MS.AAD.7.2", PostureResult.not_applicable, "nobody holds a highly privileged role"
        )
    ratio = len(ga) / len(others) if others else float("inf")
    shown = "no other privileged users" if not others else f"ratio {ratio:.2f}"
    text = (
        f"{len(ga)} Global Administrator(s) to {len(others)} user(s) with only other highly "
        f"privileged roles: {shown} (at most {MAX_GLOBAL_ADMIN_RATIO:g} passes)"
    )
    if ratio <= MAX_GLOBAL_ADMIN_RATIO:
        return PolicyRow("MS.AAD.7.2", PostureResult.passed, text, counts)
    items = _people(
        reading, ga - reading.break_glass, "holds Global Administrator: a narrower role may do"
    )
    return PolicyRow("MS.AAD.7.2", PostureResult.failed, text, counts, items)


def _cloud_only(reading: PostureReading, by_role: Mapping[str, set[str]]) -> PolicyRow:
    privileged = set().union(*(by_role.get(role, set()) for role in reading.roles))
    synced = {u for u in privileged if (a := reading.accounts.get(u)) is not None and a.synced}
    counts = {"privileged_users": len(privileged), "synced": len(synced)}
    text = f"{len(synced)} of {len(privileged)} privileged user(s) synced from on-premises"
    if not synced:
        return PolicyRow("MS.AAD.7.3", PostureResult.passed, text, counts)
    items = [
        Item(
            u,
            _name(reading, u),
            "onPremisesSyncEnabled; holds "
            + _roles_text(r for r in reading.roles if u in by_role.get(r, set())),
        )
        for u in synced
    ]
    items.sort(key=lambda item: (item.name.casefold(), item.id))
    return PolicyRow("MS.AAD.7.3", PostureResult.failed, text, counts, items)


def _standing(
    reading: PostureReading, grants: Sequence[Grant], what: str, policy_id: str
) -> PolicyRow:
    """Grants that fail a policy, one item per principal; service principals are counted
    apart (CISA's policies are about users, and PIM cannot make them eligible)."""
    by_principal: dict[str, list[Grant]] = {}
    service_principals: set[str] = set()
    break_glass: set[str] = set()
    for grant in grants:
        if grant.principal_type == "servicePrincipal":
            service_principals.add(grant.principal_id)
            continue
        by_principal.setdefault(grant.principal_id, []).append(grant)
        if grant.principal_id in reading.break_glass:
            break_glass.add(grant.principal_id)
    items = [
        Item(
            principal,
            held[0].principal_name or _name(reading, principal),
            ("break-glass; " if principal in break_glass else "")
            + ("group; " if held[0].principal_type == "group" else "")
            + _roles_text({g.role_id for g in held}),
        )
        for principal, held in by_principal.items()
    ]
    items.sort(key=lambda item: (item.name.casefold(), item.id))
    counts = {
        "principals": len(by_principal),
        "assignments": sum(len(held) for held in by_principal.values()),
        "service_principals": len(service_principals),
    }
    text = f"{len(by_principal)} user(s) or group(s) {what}"
    if service_principals:
        text += f"; {len(service_principals)} service principal(s) too, not counted"
    result = PostureResult.failed if by_principal else PostureResult.passed
    return PolicyRow(policy_id, result, text, counts, items)


def _permanent_active(reading: PostureReading) -> PolicyRow:
    grants = [
        g
        for g in reading.grants
        if g.kind == "active"
        and g.permanent
        and not g.activated
        and g.role_id in reading.roles
        and g.principal_id not in reading.break_glass
    ]
    row = _standing(reading, grants, "hold a permanent Active assignment", "MS.AAD.7.4")
    exempt = {
        g.principal_id
        for g in reading.grants
        if g.kind == "active" and g.permanent and g.principal_id in reading.break_glass
    }
    row.counts["break_glass_exempt"] = len(exempt)
    return PolicyRow(
        row.policy_id,
        row.result,
        row.detail + f"; {len(exempt)} break-glass account(s) exempt",
        row.counts,
        row.items,
    )


def _outside_pim(reading: PostureReading) -> PolicyRow:
    grants = [
        g
        for g in reading.grants
        if g.kind == "active" and g.outside_pim and g.role_id in reading.roles
    ]
    return _standing(reading, grants, "were assigned outside PIM", "MS.AAD.7.5")


def _approval(reading: PostureReading) -> PolicyRow:
    rule = reading.rules.get(GLOBAL_ADMINISTRATOR, {}).get(APPROVAL_END_USER) or {}
    setting = rule.get("setting") or {}
    approvers = sum(
        len(stage.get("primaryApprovers") or []) for stage in setting.get("approvalStages") or []
    )
    counts = {"approvers": approvers}
    if setting.get("isApprovalRequired") and approvers:
        return PolicyRow(
            "MS.AAD.7.6",
            PostureResult.passed,
            f"approval required, {approvers} approver(s) (users or groups) named",
            counts,
        )
    item = Item(
        GLOBAL_ADMINISTRATOR,
        role_name(GLOBAL_ADMINISTRATOR),
        f"{APPROVAL_END_USER}: "
        + ("no approver named" if setting.get("isApprovalRequired") else "no approval required"),
    )
    return PolicyRow(
        "MS.AAD.7.6",
        PostureResult.failed,
        "Global Administrator activates without approval",
        counts,
        [item],
    )


def _alerts(
    reading: PostureReading, policy_id: str, roles: Sequence[str], rule_ids: Sequence[str]
) -> PolicyRow:
    if not roles:
        return PolicyRow(policy_id, PostureResult.not_applicable, "no such role in scope")
    to = ", ".join(reading.mailboxes) if reading.mailboxes else "any recipient"
    items = []
    for role in roles:
        missing = [
            rule_id
            for rule_id in rule_ids
            if not notification_reaches(reading.rules.get(role, {}).get(rule_id), reading.mailboxes)
        ]
        if missing:
            items.append(Item(role, role_name(role), "does not mail: " + ", ".join(missing)))
    items.sort(key=lambda item: item.name)
    counts = {"roles": len(roles), "roles_without_alert": len(items)}
    text = f"{len(roles) - len(items)} of {len(roles)} role(s) mail {to}"
    result = PostureResult.failed if items else PostureResult.passed
    return PolicyRow(policy_id, result, text, counts, items)


def evaluate(reading: PostureReading) -> list[PolicyRow]:
    """Every MS.AAD.7 policy, in order, for this reading."""
    by_role = _users_by_role(reading)
    ga = by_role.get(GLOBAL_ADMINISTRATOR, set())
    scoped = {role: users for role, users in by_role.items() if role in reading.roles}
    scoped.setdefault(GLOBAL_ADMINISTRATOR, ga)
    others = [r for r in reading.roles if r != GLOBAL_ADMINISTRATOR]
    return [
        _global_admin_count(reading, ga),
        _global_admin_ratio(reading, scoped),
        _cloud_only(reading, by_role),
        _permanent_active(reading),
        _outside_pim(reading),
        _approval(reading),
        _alerts(reading, "MS.AAD.7.7", list(reading.roles), (ASSIGNMENT_ALERT, ELIGIBILITY_ALERT)),
        _alerts(reading, "MS.AAD.7.8", [GLOBAL_ADMINISTRATOR], (ACTIVATION_ALERT,)),
        _alerts(reading, "MS.AAD.7.9", others, (ACTIVATION_ALERT,)),
    ]


def summarize(rows: Iterable[PolicyRow]) -> dict[str, int]:
    counts = {result.value: 0 for result in PostureResult}
    for row in rows:
        counts[row.result.value] += 1
    return counts


# --- what a plan does about each policy -----------------------------------------------------


def _steps(spec: PlanSpec) -> Iterable[tuple[str, Any]]:
    for phase in spec.phases:
        for step in phase.steps:
            yield phase.key, step


def plan_actions(spec: PlanSpec, roles: Sequence[str]) -> dict[str, str]:
    """Per policy, in a sentence: which phase and step of ``spec`` address it (or that none
    does), for the roles in scope."""
    targets = [str(r) for r in spec.role_ids()]
    outside = [r for r in roles if r not in targets]
    not_targeted = f"; not target roles of the plan: {_roles_text(outside)}" if outside else ""

    conversions = [
        f"{key}: {_cohort_text(s)}" for key, s in _steps(spec) if isinstance(s, ConvertCohortStep)
    ]
    reviews = [
        f"{key}: a review every {s.interval_months} months, default {s.default_decision}"
        for key, s in _steps(spec)
        if isinstance(s, CreateAccessReviewsStep)
    ]
    approvals = [
        f"{key}: approval by " + ", ".join(a.binding or str(a.user or a.group) for a in r.approvers)
        for key, s in _steps(spec)
        if isinstance(s, RequireApprovalStep)
        for r in s.rules
        if any(str(role) == GLOBAL_ADMINISTRATOR for role in r.roles)
    ]

    def alerts(rule_ids: set[str], wanted_roles: Sequence[str]) -> str:
        parts = []
        covered: set[str] = set()
        for key, s in _steps(spec):
            if not isinstance(s, SetNotificationRulesStep):
                continue
            if not rule_ids & {r.id for r in s.rules}:
                continue
            step_roles = [str(r) for r in spec.role_ids(s.roles) if str(r) in wanted_roles]
            if step_roles:
                covered.update(step_roles)
                parts.append(f"{key}: set_notification_rules for {_describe_roles(step_roles)}")
        missing = [r for r in wanted_roles if r not in covered]
        if not parts:
            return "not addressed by the plan"
        text = "; ".join(parts)
        if missing:
            text += f"; no alert set for {_roles_text(missing)}"
        return text

    convert_text = "; ".join(f"convert_cohort in {c}" for c in conversions) if conversions else ""
    return {
        "MS.AAD.7.1": (
            "; ".join(reviews) + ": holders who no longer need it can be removed"
            if reviews
            else "not addressed by the plan"
        ),
        "MS.AAD.7.2": "not addressed by the plan: it keeps every holder's roles (as Eligible)",
        "MS.AAD.7.3": "not addressed by the plan: give these admins cloud-only accounts",
        "MS.AAD.7.4": (
            convert_text + " (Active becomes Eligible); service principals, and the last "
            "active holder of a role PIM protects, stay Active" + not_targeted
            if conversions
            else "not addressed by the plan"
        ),
        "MS.AAD.7.5": (
            convert_text + ": converted holders get their role through PIM; break-glass "
            "accounts are left as they are" + not_targeted
            if conversions
            else "not addressed by the plan"
        ),
        "MS.AAD.7.6": "; ".join(approvals) if approvals else "not addressed by the plan",
        "MS.AAD.7.7": alerts({ASSIGNMENT_ALERT, ELIGIBILITY_ALERT}, list(roles)),
        "MS.AAD.7.8": alerts({ACTIVATION_ALERT}, [GLOBAL_ADMINISTRATOR]),
        "MS.AAD.7.9": alerts({ACTIVATION_ALERT}, [r for r in roles if r != GLOBAL_ADMINISTRATOR]),
    }


def _cohort_text(step: ConvertCohortStep) -> str:
    if step.cohort.remaining:
        return "every remaining holder"
    return step.cohort.binding or "listed principals"


def _describe_roles(role_ids: Sequence[str]) -> str:
    if len(role_ids) <= 2:
        return _roles_text(role_ids)
    return f"{len(role_ids)} roles"


def with_plan(rows: Sequence[PolicyRow], actions: Mapping[str, str] | None) -> list[PolicyRow]:
    if actions is None:
        return list(rows)
    return [
        PolicyRow(r.policy_id, r.result, r.detail, r.counts, r.items, actions.get(r.policy_id))
        for r in rows
    ]
