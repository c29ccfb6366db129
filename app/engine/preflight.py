"""Checks before a plan starts, each with a verdict: licensing, break-glass, circular trust
against real membership, the Graph permissions the plan needs, and role settings that would
make a conversion or a rollback impossible. A failed check refuses ``start``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.db.models import Plan, Tenant
from app.domain.plan import (
    ApplyRoleSettingsStep,
    ConvertCohortStep,
    CreateAccessReviewsStep,
    PlanSpec,
    RequireApprovalStep,
    SendCommsStep,
)
from app.domain.roles import GLOBAL_ADMINISTRATOR, role_name
from app.domain.rules import (
    ENABLEMENT_ADMIN_ASSIGNMENT,
    ENABLEMENT_ADMIN_ELIGIBILITY,
    EXPIRATION_ADMIN_ASSIGNMENT,
    RuleConflictError,
    admin_mfa_blockers,
    desired_activation_rules,
    eligibility_expiration,
)
from app.domain.tenant import Binding, CommsSettings, GroupBinding, RoleOwnersBinding
from app.domain.trust import approver_problems
from app.engine.context import EngineContext, credential_problems
from app.engine.live import (
    active_holders,
    eligible_principals,
    gather_bounded,
    resolve_approvers,
    role_rules,
)
from app.graph.client import GraphClient
from app.graph.errors import (
    GraphCredentialError,
    GraphError,
    GraphForbiddenError,
    GraphNotFoundError,
)
from app.graph.models import (
    ExpirationCreate,
    ExpirationType,
    ScheduleInfoCreate,
    ScheduleRequestAction,
    ScheduleRequestCreate,
    has_entra_id_p2,
)
from app.services.plans import effective_bindings

Severity = Literal["error", "warning"]
PROBE_PRINCIPAL = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    severity: Severity = "error"


@dataclass
class PreflightReport:
    at: datetime
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.ok or c.severity == "warning" for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.severity == "error"]

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "at": self.at.isoformat(),
            "checks": [asdict(c) for c in self.checks],
        }


async def _guarded(name: str, check: Callable[[], Awaitable[list[Check]]]) -> list[Check]:
    try:
        return await check()
    except GraphCredentialError:
        raise  # not a verdict on the tenant: the whole preflight answers the 424
    except GraphError as exc:
        return [
            Check(name, False, f"could not be checked: {exc.code or exc.status}: {exc.message}")
        ]


async def run_preflight(ectx: EngineContext, *, tenant: Tenant, plan: Plan) -> PreflightReport:
    client = await ectx.client_for(tenant)
    spec = PlanSpec.model_validate(plan.spec)
    bindings = effective_bindings(tenant, plan.binding_overrides)
    report = PreflightReport(at=ectx.clock.now())
    checks: list[tuple[str, Callable[[], Awaitable[list[Check]]]]] = [
        ("licensing", lambda: _licensing(client)),
        (
            "permissions",
            lambda: _permissions(client, spec, CommsSettings.model_validate(tenant.comms)),
        ),
        ("break_glass", lambda: _break_glass(client, list(tenant.break_glass_ids))),
        ("circular_trust", lambda: _circular_trust(client, spec, bindings)),
        ("role_settings", lambda: _role_settings(client, spec)),
        (
            "bindings",
            lambda: _bindings(client, spec, bindings, CommsSettings.model_validate(tenant.comms)),
        ),
    ]
    with credential_problems(tenant):
        for name, check in checks:
            report.checks += await _guarded(name, check)
    return report


async def _licensing(client: GraphClient) -> list[Check]:
    skus = await client.list_subscribed_skus()
    if has_entra_id_p2(skus):
        return [Check("licensing", True, "Entra ID P2 is present (AAD_PREMIUM_P2 service plan)")]
    return [
        Check(
            "licensing",
            False,
            "no subscribed SKU provides the AAD_PREMIUM_P2 service plan: "
            "PIM and access reviews need Entra ID P2 (or Entra ID Governance)",
        )
    ]


async def _probe(call: Callable[[], Awaitable[object]]) -> bool:
    """Granted unless Graph answers 403; a 400 or 404 means the call got past authorization."""
    try:
        await call()
    except GraphForbiddenError:
        return False
    except GraphCredentialError:
        raise  # no token: nothing was probed
    except (GraphError, ValueError):
        return True
    return True


async def _permissions(client: GraphClient, spec: PlanSpec, comms: CommsSettings) -> list[Check]:
    kinds = {step.kind for phase in spec.phases for step in phase.steps}
    probe_request = ScheduleRequestCreate(
        action=ScheduleRequestAction.admin_assign,
        principal_id=PROBE_PRINCIPAL,
        role_definition_id=GLOBAL_ADMINISTRATOR,
        justification="PIM rollout preflight (validation only)",
        schedule_info=ScheduleInfoCreate(
            expiration=ExpirationCreate(type=ExpirationType.no_expiration)
        ),
        is_validation_only=True,
    )
    remove_probe = probe_request.model_copy(
        update={"action": ScheduleRequestAction.admin_remove, "schedule_info": None}
    )
    wanted: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
        (
            "read role definitions and assignments",
            "RoleManagement.Read.Directory",
            lambda: client.get_role_definition(GLOBAL_ADMINISTRATOR),
        ),
        (
            "read role settings",
            "RoleManagementPolicy.Read.Directory",
            lambda: client.get_policy_assignment(GLOBAL_ADMINISTRATOR),
        ),
    ]
    if "convert_cohort" in kinds:
        wanted += [
            (
                "create eligible assignments",
                "RoleEligibilitySchedule.ReadWrite.Directory",
                lambda: client.create_eligibility_request(probe_request),
            ),
            (
                "remove active assignments",
                "RoleAssignmentSchedule.ReadWrite.Directory",
                lambda: client.create_assignment_request(remove_probe),
            ),
        ]
    if kinds & {"apply_role_settings", "require_approval", "set_notification_rules"}:
        wanted.append(
            (
                "change role settings",
                "RoleManagementPolicy.ReadWrite.Directory",
                lambda: client.probe_write("PATCH", RULE_PROBE_PATH),
            )
        )
    if "create_access_reviews" in kinds:
        wanted.append(
            (
                "create access reviews",
                "AccessReview.ReadWrite.All",
                lambda: client.probe_write("POST", "/identityGovernance/accessReviews/definitions"),
            )
        )
    if "send_comms" in kinds and comms.sender:
        wanted.append(
            (
                "send the comms mail",
                "Mail.Send",
                lambda: client.probe_write("POST", f"/users/{comms.sender}/sendMail"),
            )
        )
    if any(phase.health_gates for phase in spec.phases):
        wanted.append(
            (
                "read the audit log for health gates",
                "AuditLog.Read.All",
                lambda: _first(client.iter_directory_audits(category="RoleManagement")),
            )
        )
    checks = []
    for label, permission, call in wanted:
        ok = await _probe(call)
        checks.append(
            Check(
                "permissions",
                ok,
                f"{label}: {'granted' if ok else 'denied (403)'} - needs {permission}",
            )
        )
    return checks


async def _first(items: AsyncIterator[object]) -> object | None:
    async for item in items:
        return item
    return None


# A policy that does not exist: answered 404 after authorization, and nothing can change.
RULE_PROBE_PATH = (
    "/policies/roleManagementPolicies/preflight-probe/rules/Expiration_EndUser_Assignment"
)


async def _break_glass(client: GraphClient, ids: list[str]) -> list[Check]:
    if len(ids) < 2:
        return [
            Check(
                "break_glass",
                False,
                f"{len(ids)} break-glass account(s) configured; at least 2 are required",
            )
        ]
    holding: list[str] = []
    missing: list[str] = []
    for principal in ids:
        permanent = [
            i
            async for i in client.iter_assignment_schedule_instances(
                role_definition_id=GLOBAL_ADMINISTRATOR,
                principal_id=principal,
                assignment_type="Assigned",
            )
            if i.end_date_time is None and (i.directory_scope_id or "/") == "/"
        ]
        (holding if permanent else missing).append(principal)
    if len(holding) >= 2 and not missing:
        return [
            Check(
                "break_glass",
                True,
                f"{len(holding)} break-glass accounts hold permanent Active Global Administrator",
            )
        ]
    detail = (
        f"{len(holding)} of {len(ids)} break-glass accounts hold permanent Active "
        "Global Administrator"
    )
    if missing:
        detail += f"; not holding it: {', '.join(missing)}"
    return [Check("break_glass", len(holding) >= 2 and not missing, detail)]


async def _circular_trust(
    client: GraphClient, spec: PlanSpec, bindings: Mapping[str, Binding]
) -> list[Check]:
    checks: list[Check] = []
    for phase in spec.phases:
        for step in phase.steps:
            if not isinstance(step, RequireApprovalStep):
                continue
            for rule in step.rules:
                approvers = await resolve_approvers(client, rule.approvers, bindings)
                for role_uuid in spec.role_ids(rule.roles):
                    role_id = str(role_uuid)
                    holders = await active_holders(client, role_id) | {
                        principal for principal, _ in await eligible_principals(client, role_id)
                    }
                    problems = approver_problems(
                        role_id=role_id,
                        approvers=approvers.people,
                        min_approvers=rule.min_approvers,
                        holders=holders,
                    )
                    if problems:
                        checks += [
                            Check("circular_trust", False, f"{phase.key}: {p.message}")
                            for p in problems
                        ]
                    else:
                        checks.append(
                            Check(
                                "circular_trust",
                                True,
                                f"{phase.key}: {role_name(role_id)} approvers "
                                f"({len(approvers.people)}) "
                                "hold no assignment of it",
                            )
                        )
    if not checks:
        checks.append(Check("circular_trust", True, "the plan requires no approvals"))
    return checks


async def _role_settings(client: GraphClient, spec: PlanSpec) -> list[Check]:
    roles = [str(r) for r in spec.role_ids()]
    converts = any(isinstance(s, ConvertCohortStep) for p in spec.phases for s in p.steps)
    results = await gather_bounded(roles, lambda r: role_rules(client, r), limit=8)
    checks: list[Check] = []
    for role_id, (_, rules) in zip(roles, results, strict=True):
        name = role_name(role_id)
        for blocker in admin_mfa_blockers(rules):
            if blocker == ENABLEMENT_ADMIN_ELIGIBILITY and converts:
                checks.append(
                    Check(
                        "role_settings",
                        False,
                        f"{name}: {blocker} requires MFA of the assigning admin; an app "
                        "cannot satisfy it, so converting to Eligible would fail",
                    )
                )
            elif blocker == ENABLEMENT_ADMIN_ASSIGNMENT:
                checks.append(
                    Check(
                        "role_settings",
                        False,
                        f"{name}: {blocker} requires MFA of the assigning admin; a rollback "
                        "could not re-create permanent Active assignments",
                    )
                )
        if rules.get(EXPIRATION_ADMIN_ASSIGNMENT, {}).get("isExpirationRequired"):
            checks.append(
                Check(
                    "role_settings",
                    False,
                    f"{name}: {EXPIRATION_ADMIN_ASSIGNMENT} forbids permanent Active "
                    "assignments; a rollback could not restore the baseline exactly",
                )
            )
        target = spec.role(uuid.UUID(role_id))
        conflict = _settings_conflict(spec, uuid.UUID(role_id), rules)
        if conflict:
            checks.append(Check("role_settings", False, f"{name}: {conflict}"))
        _, note = eligibility_expiration(
            rules, target.settings.eligible_expiration if target else None
        )
        if note and converts:
            checks.append(Check("role_settings", False, f"{name}: {note}", "warning"))
    if not any(not c.ok for c in checks):
        checks.append(
            Check(
                "role_settings",
                True,
                f"the {len(roles)} target roles allow conversion and exact rollback",
            )
        )
    return checks


def _settings_conflict(spec: PlanSpec, role_id: uuid.UUID, rules: Mapping[str, Any]) -> str | None:
    """What Graph would refuse when a settings step reaches this role, e.g. MFA on a role
    that asks for an authentication context (found now rather than mid-phase)."""
    target = spec.role(role_id)
    if target is None:
        return None
    for phase in spec.phases:
        for step in phase.steps:
            if isinstance(step, ApplyRoleSettingsStep) and role_id in spec.role_ids(step.roles):
                try:
                    desired_activation_rules(rules, target.settings.merged(step.settings))
                except RuleConflictError as exc:
                    return f"phase {phase.key}: {exc}"
    return None


async def _bindings(
    client: GraphClient, spec: PlanSpec, bindings: Mapping[str, Binding], comms: CommsSettings
) -> list[Check]:
    checks: list[Check] = []
    steps = [s for p in spec.phases for s in p.steps]
    for name in sorted(
        {s.cohort.binding for s in steps if isinstance(s, ConvertCohortStep) and s.cohort.binding}
    ):
        binding = bindings[name]
        if isinstance(binding, GroupBinding):
            try:
                group = await client.get_group(str(binding.id))
                checks.append(
                    Check("bindings", True, f"cohort {name}: group {group.display_name!r} exists")
                )
            except GraphNotFoundError:
                checks.append(
                    Check("bindings", False, f"cohort {name}: group {binding.id} does not exist")
                )
    if any(isinstance(s, SendCommsStep) for s in steps):
        if not comms.sender:
            checks.append(
                Check("bindings", False, "the plan sends comms but the tenant has no comms sender")
            )
        else:
            try:
                await client.get_user(comms.sender)
                checks.append(Check("bindings", True, f"comms sender {comms.sender} exists"))
            except GraphNotFoundError:
                checks.append(
                    Check("bindings", False, f"comms sender {comms.sender} does not exist")
                )
        if comms.helpdesk is None:
            checks.append(
                Check(
                    "bindings",
                    False,
                    "the plan sends comms but the tenant has no helpdesk contact to put in them",
                )
            )
    for step in steps:
        if isinstance(step, CreateAccessReviewsStep) and step.reviewers.binding:
            owners = bindings.get(step.reviewers.binding)
            if isinstance(owners, RoleOwnersBinding):
                missing = [
                    role_name(str(r))
                    for r in spec.role_ids(step.roles)
                    if r not in owners.owners and owners.fallback is None
                ]
                checks.append(
                    Check(
                        "bindings",
                        not missing,
                        "every reviewed role has an owner"
                        if not missing
                        else f"no owner (and no fallback) for: {', '.join(missing)}",
                    )
                )
    return checks
