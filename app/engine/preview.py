"""Dry run: per phase, exactly what would change, computed from live reads; nothing is written.

Later phases see the tenant as earlier phases would leave it: converted holders are no longer
"remaining", and a rule changed by the pilot is the "before" of the feedback phase's change.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.db.models import Plan, Tenant
from app.domain.cohort import Holding, select_conversions
from app.domain.plan import (
    ApplyRoleSettingsStep,
    ConvertCohortStep,
    CreateAccessReviewsStep,
    PlanSpec,
    RequireApprovalStep,
    SendCommsStep,
    SetNotificationRulesStep,
)
from app.domain.roles import LAST_ACTIVE_PROTECTED, role_name
from app.domain.rules import (
    RuleConflictError,
    approval_signature,
    desired_activation_rules,
    desired_approval_rule,
    desired_notification_rules,
    eligibility_expiration,
    meaningful,
)
from app.domain.trust import approver_problems
from app.domain.validation import iso_duration
from app.engine.context import EngineContext, credential_problems
from app.engine.live import (
    active_holders,
    cohort_members,
    eligible_principals,
    gather_bounded,
    permanent_holdings,
    resolve_approvers,
    role_rules,
)
from app.engine.steps.notifications import MailboxBindingError, resolve_mailboxes
from app.engine.steps.reviews import review_display_name, reviewer_for_binding
from app.graph.client import GraphClient
from app.services.plans import effective_bindings

CSV_COLUMNS = ["phase", "step", "kind", "role", "subject", "before", "after", "note"]


@dataclass
class Change:
    kind: str
    role: str | None = None
    subject: str | None = None
    before: str | None = None
    after: str | None = None
    note: str | None = None


@dataclass
class PhasePreview:
    key: str
    title: str
    changes: list[tuple[int, Change]] = field(default_factory=list)


def _rule_text(rule: Mapping[str, Any]) -> str:
    shown = meaningful(rule)
    if "maximumDuration" in rule:
        return f"required={rule.get('isExpirationRequired')} max={rule.get('maximumDuration')}"
    if "enabledRules" in shown:
        return "+".join(shown["enabledRules"]) or "none"
    if "notificationLevel" in rule:
        recipients = ", ".join(rule.get("notificationRecipients") or []) or "no extra recipients"
        defaults = "on" if rule.get("isDefaultRecipientsEnabled") else "off"
        return f"{rule.get('notificationLevel')} to {recipients}; default recipients {defaults}"
    if "setting" in rule:
        sig = approval_signature(rule)
        if not sig["required"]:
            return "no approval"
        return "approval by " + ", ".join(
            f"{kind.split('.')[-1]}:{oid}" for kind, oid in sig["approvers"]
        )
    return str(shown)


async def preview_plan(ectx: EngineContext, *, plan: Plan, tenant: Tenant) -> list[PhasePreview]:
    client = await ectx.client_for(tenant)
    with credential_problems(tenant):
        return await _preview(client, plan=plan, tenant=tenant)


async def _preview(client: GraphClient, *, plan: Plan, tenant: Tenant) -> list[PhasePreview]:
    spec = PlanSpec.model_validate(plan.spec)
    bindings = effective_bindings(tenant, plan.binding_overrides)
    break_glass = set(tenant.break_glass_ids)
    roles = [str(r) for r in spec.role_ids()]
    holdings = await permanent_holdings(client, roles)
    active: dict[tuple[str, str, str], Holding] = {
        (h.principal_id, h.role_definition_id, h.directory_scope_id): h for h in holdings
    }
    rules_by_role = dict(
        zip(
            roles,
            [
                rules
                for _, rules in await gather_bounded(
                    roles, lambda r: role_rules(client, r), limit=8
                )
            ],
            strict=True,
        )
    )
    eligible = dict(
        zip(
            roles,
            await gather_bounded(roles, lambda r: eligible_principals(client, r), limit=8),
            strict=True,
        )
    )
    previews: list[PhasePreview] = []
    for phase in spec.phases:
        out = PhasePreview(phase.key, phase.title)
        converted_users: list[str] = []
        for index, step in enumerate(phase.steps):
            if isinstance(step, ApplyRoleSettingsStep):
                for role_uuid in spec.role_ids(step.roles):
                    role_id = str(role_uuid)
                    target = spec.role(role_uuid)
                    assert target is not None
                    try:
                        changes = desired_activation_rules(
                            rules_by_role[role_id], target.settings.merged(step.settings)
                        )
                    except RuleConflictError as exc:
                        out.changes.append(
                            (index, Change(step.kind, role_name(role_id), note=str(exc)))
                        )
                        continue
                    for rule_id, rule in changes.items():
                        out.changes.append(
                            (
                                index,
                                Change(
                                    step.kind,
                                    role_name(role_id),
                                    rule_id,
                                    _rule_text(rules_by_role[role_id][rule_id]),
                                    _rule_text(rule),
                                ),
                            )
                        )
                        rules_by_role[role_id] = {**rules_by_role[role_id], rule_id: rule}
            elif isinstance(step, ConvertCohortStep):
                step_roles = [str(r) for r in spec.role_ids(step.roles)]
                cohort = await cohort_members(client, step.cohort, bindings)
                selected, excluded = select_conversions(
                    list(active.values()),
                    roles_in_order=step_roles,
                    cohort=cohort,
                    break_glass=break_glass,
                )
                for choice in selected:
                    h = choice.holding
                    who = h.principal_upn or h.principal_name or h.principal_id
                    role_id = h.role_definition_id
                    if choice.skip_reason:
                        out.changes.append(
                            (
                                index,
                                Change(
                                    step.kind,
                                    role_name(role_id),
                                    who,
                                    "Active (permanent)",
                                    "unchanged",
                                    choice.skip_reason,
                                ),
                            )
                        )
                        continue
                    target_role = spec.role(uuid.UUID(role_id))
                    duration, note = eligibility_expiration(
                        rules_by_role[role_id],
                        target_role.settings.eligible_expiration if target_role else None,
                    )
                    after = (
                        "Eligible (permanent)"
                        if duration is None
                        else f"Eligible ({iso_duration(duration)})"
                    )
                    key = (h.principal_id, role_id, h.directory_scope_id)
                    if (h.principal_id, h.directory_scope_id) in eligible[role_id]:
                        note = "already Eligible; only the Active assignment is removed"
                    if role_id in LAST_ACTIVE_PROTECTED and not any(
                        k[1] == role_id and k != key for k in active
                    ):
                        out.changes.append(
                            (
                                index,
                                Change(
                                    step.kind,
                                    role_name(role_id),
                                    who,
                                    "Active (permanent)",
                                    "Active + Eligible",
                                    "the last active holder: PIM refuses to remove it",
                                ),
                            )
                        )
                        continue
                    out.changes.append(
                        (
                            index,
                            Change(
                                step.kind,
                                role_name(role_id),
                                who,
                                "Active (permanent)",
                                after,
                                note,
                            ),
                        )
                    )
                    active.pop(key, None)
                    if h.principal_type == "user":
                        converted_users.append(h.principal_id)
                for skipped in excluded:
                    h = skipped.holding
                    out.changes.append(
                        (
                            index,
                            Change(
                                step.kind,
                                role_name(h.role_definition_id),
                                h.principal_upn or h.principal_name or h.principal_id,
                                "Active (permanent)",
                                "unchanged",
                                skipped.reason,
                            ),
                        )
                    )
            elif isinstance(step, SendCommsStep):
                recipients = sorted(set(converted_users))
                out.changes.append(
                    (
                        index,
                        Change(
                            step.kind,
                            None,
                            f"{len(recipients)} recipient(s)",
                            None,
                            step.subject,
                            "one mail per converted admin",
                        ),
                    )
                )
            elif isinstance(step, RequireApprovalStep):
                for approval in step.rules:
                    approvers = await resolve_approvers(client, approval.approvers, bindings)
                    for role_uuid in spec.role_ids(approval.roles):
                        role_id = str(role_uuid)
                        holders = await active_holders(client, role_id) | {
                            p for p, _ in eligible[role_id]
                        }
                        problems = approver_problems(
                            role_id=role_id,
                            approvers=approvers.people,
                            min_approvers=approval.min_approvers,
                            holders=holders,
                        )
                        desired = desired_approval_rule(
                            rules_by_role[role_id],
                            approvers=approvers.subjects,
                            timeout_days=approval.approval_timeout_days,
                            approver_justification=approval.require_approver_justification,
                        )
                        if desired is None:
                            continue
                        out.changes.append(
                            (
                                index,
                                Change(
                                    step.kind,
                                    role_name(role_id),
                                    desired["id"],
                                    _rule_text(rules_by_role[role_id][desired["id"]]),
                                    _rule_text(desired),
                                    "; ".join(p.message for p in problems)
                                    or f"{len(approvers.people)} people can approve",
                                ),
                            )
                        )
                        rules_by_role[role_id] = {**rules_by_role[role_id], desired["id"]: desired}
            elif isinstance(step, SetNotificationRulesStep):
                try:
                    mailboxes = resolve_mailboxes(step.recipients, bindings)
                except MailboxBindingError as exc:
                    out.changes.append((index, Change(step.kind, note=str(exc))))
                    continue
                for role_uuid in spec.role_ids(step.roles):
                    role_id = str(role_uuid)
                    changes = desired_notification_rules(
                        rules_by_role[role_id], step.rules, mailboxes
                    )
                    for rule_id, rule in changes.items():
                        out.changes.append(
                            (
                                index,
                                Change(
                                    step.kind,
                                    role_name(role_id),
                                    rule_id,
                                    _rule_text(rules_by_role[role_id][rule_id]),
                                    _rule_text(rule),
                                ),
                            )
                        )
                        rules_by_role[role_id] = {**rules_by_role[role_id], rule_id: rule}
            elif isinstance(step, CreateAccessReviewsStep):
                for role_uuid in spec.role_ids(step.roles):
                    role_id = str(role_uuid)
                    reviewer, _ = reviewer_for_binding(step, bindings, role_id)
                    out.changes.append(
                        (
                            index,
                            Change(
                                step.kind,
                                role_name(role_id),
                                review_display_name(plan.id, role_id),
                                "none",
                                f"every {step.interval_months} months, "
                                f"default {step.default_decision}, "
                                f"auto-apply {'on' if step.auto_apply else 'off'}",
                                f"reviewer {reviewer}"
                                if reviewer
                                else "no reviewer: the step would fail",
                            ),
                        )
                    )
        previews.append(out)
    return previews


def preview_json(previews: list[PhasePreview]) -> list[dict[str, Any]]:
    return [
        {
            "phase": p.key,
            "title": p.title,
            "changes": [{"step": step, **change.__dict__} for step, change in p.changes],
            "summary": _summary(p),
        }
        for p in previews
    ]


def _summary(preview: PhasePreview) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, change in preview.changes:
        counts[change.kind] = counts.get(change.kind, 0) + 1
    return counts


def preview_csv(previews: list[PhasePreview]) -> str:
    return preview_csv_from_json(preview_json(previews))


def preview_csv_from_json(phases: list[dict[str, Any]]) -> str:
    """The dry run as CSV, from its JSON form (what a preview job keeps as its result)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for phase in phases:
        for change in phase["changes"]:
            writer.writerow(
                [phase["phase"], change["step"]]
                + [
                    change.get(f) or ""
                    for f in ("kind", "role", "subject", "before", "after", "note")
                ]
            )
    return buffer.getvalue()
