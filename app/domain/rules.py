"""From plan settings to PIM policy rules: pure functions over the rules' JSON as Graph sends it.

Each Entra role has one policy with 17 fixed rules (reference §7.2). We only ever change the
rules below, always sending the whole rule back with our change applied (§7.3).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from app.domain.plan import NotificationRuleSetting, RoleSettings
from app.domain.validation import iso_duration

EXPIRATION_END_USER = "Expiration_EndUser_Assignment"
ENABLEMENT_END_USER = "Enablement_EndUser_Assignment"
APPROVAL_END_USER = "Approval_EndUser_Assignment"
AUTH_CONTEXT_END_USER = "AuthenticationContext_EndUser_Assignment"
EXPIRATION_ADMIN_ELIGIBILITY = "Expiration_Admin_Eligibility"
ENABLEMENT_ADMIN_ELIGIBILITY = "Enablement_Admin_Eligibility"
EXPIRATION_ADMIN_ASSIGNMENT = "Expiration_Admin_Assignment"
ENABLEMENT_ADMIN_ASSIGNMENT = "Enablement_Admin_Assignment"

# Rules that, when tightened, stop an app from re-creating a permanent Active assignment; a
# rollback restores them before it re-creates anything (reference §6).
BLOCKS_ACTIVE_RECREATION = frozenset({EXPIRATION_ADMIN_ASSIGNMENT, ENABLEMENT_ADMIN_ASSIGNMENT})

MFA = "MultiFactorAuthentication"
JUSTIFICATION = "Justification"
TICKETING = "Ticketing"

Rule = dict[str, Any]

# Fields that carry a rule's meaning; read-only metadata is ignored when comparing.
_MEANINGFUL = {
    "isExpirationRequired",
    "maximumDuration",
    "enabledRules",
    "setting",
    "isEnabled",
    "claimValue",
    "notificationType",
    "notificationLevel",
    "isDefaultRecipientsEnabled",
    "notificationRecipients",
}


class RuleConflictError(Exception):
    """The tenant's rules make the requested setting impossible (e.g. MFA and auth context)."""


def parse_duration(value: str | None) -> timedelta | None:
    """ISO-8601 durations as Graph writes them (P365D, PT8H, PT1H45M)."""
    if value is None:
        return None
    from pydantic import TypeAdapter

    return TypeAdapter(timedelta).validate_python(value)


def meaningful(rule: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _MEANINGFUL:
        if key in rule:
            value = rule[key]
            if key == "enabledRules":
                value = sorted(value or [])
            elif key == "notificationRecipients":
                value = sorted({str(v).casefold() for v in value or []})
            elif key in {"notificationType", "notificationLevel"} and isinstance(value, str):
                value = value.casefold()
            elif key == "maximumDuration" and value is not None:
                duration = parse_duration(value)
                value = duration.total_seconds() if duration is not None else None
            out[key] = value
    return out


def same_rule(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return meaningful(left) == meaningful(right)


def patch_body(rule: Mapping[str, Any]) -> Rule:
    """The rule as it is sent back: read-only annotations stripped, type, id and target kept."""
    return {k: copy.deepcopy(v) for k, v in rule.items() if k != "@odata.context"}


def _with_enabled(rule: Rule, flag: str, wanted: bool | None) -> None:
    if wanted is None:
        return
    enabled = [r for r in rule.get("enabledRules") or [] if r != flag]
    if wanted:
        enabled.append(flag)
    rule["enabledRules"] = sorted(enabled, key=[MFA, JUSTIFICATION, TICKETING].index)


def desired_activation_rules(
    current: Mapping[str, Rule], settings: RoleSettings
) -> dict[str, Rule]:
    """Rules to PATCH so activation follows ``settings``; unchanged rules are left out."""
    changes: dict[str, Rule] = {}
    if settings.activation_max_duration is not None and EXPIRATION_END_USER in current:
        rule = patch_body(current[EXPIRATION_END_USER])
        rule["isExpirationRequired"] = True
        rule["maximumDuration"] = iso_duration(settings.activation_max_duration)
        if not same_rule(rule, current[EXPIRATION_END_USER]):
            changes[EXPIRATION_END_USER] = rule
    flags = (settings.require_mfa, settings.require_justification, settings.require_ticket)
    if any(flag is not None for flag in flags) and ENABLEMENT_END_USER in current:
        if settings.require_mfa and _auth_context_enabled(current):
            raise RuleConflictError(
                "the role requires a Conditional Access authentication context on activation; "
                "Graph refuses MFA on the same rule (MfaAndAcrsConflict) - drop require_mfa or "
                "the authentication context"
            )
        rule = patch_body(current[ENABLEMENT_END_USER])
        _with_enabled(rule, MFA, settings.require_mfa)
        _with_enabled(rule, JUSTIFICATION, settings.require_justification)
        _with_enabled(rule, TICKETING, settings.require_ticket)
        if not same_rule(rule, current[ENABLEMENT_END_USER]):
            changes[ENABLEMENT_END_USER] = rule
    return changes


def _auth_context_enabled(current: Mapping[str, Rule]) -> bool:
    return bool(current.get(AUTH_CONTEXT_END_USER, {}).get("isEnabled"))


def desired_approval_rule(
    current: Mapping[str, Rule],
    *,
    approvers: Sequence[tuple[str, str]],
    timeout_days: int,
    approver_justification: bool,
) -> Rule | None:
    """The approval rule requiring one of ``approvers`` ((kind, id) pairs); None if unchanged."""
    if APPROVAL_END_USER not in current:
        return None
    rule = patch_body(current[APPROVAL_END_USER])
    primary = [
        {"@odata.type": "#microsoft.graph.singleUser", "userId": object_id}
        if kind == "user"
        else {"@odata.type": "#microsoft.graph.groupMembers", "groupId": object_id}
        for kind, object_id in approvers
    ]
    setting = dict(rule.get("setting") or {})
    setting.update(
        {
            "isApprovalRequired": True,
            "isApprovalRequiredForExtension": False,
            "isRequestorJustificationRequired": True,
            "approvalMode": "SingleStage",
            "approvalStages": [
                {
                    "approvalStageTimeOutInDays": timeout_days,
                    "isApproverJustificationRequired": approver_justification,
                    "escalationTimeInMinutes": 0,
                    "isEscalationEnabled": False,
                    "primaryApprovers": primary,
                    "escalationApprovers": [],
                }
            ],
        }
    )
    rule["setting"] = setting
    return None if same_rule(rule, current[APPROVAL_END_USER]) else rule


def desired_notification_rules(
    current: Mapping[str, Rule],
    settings: Sequence[NotificationRuleSetting],
    recipients: Sequence[str],
) -> dict[str, Rule]:
    """Notification rules to PATCH so each mails ``recipients`` at its level; unchanged rules
    are left out. Recipients are added: whoever a rule mailed already is kept."""
    changes: dict[str, Rule] = {}
    for wanted in settings:
        if wanted.id not in current:
            continue
        rule = patch_body(current[wanted.id])
        mailed = list(rule.get("notificationRecipients") or [])
        known = {address.casefold() for address in mailed}
        mailed += [a for a in recipients if a.casefold() not in known]
        rule["notificationType"] = rule.get("notificationType") or "Email"
        rule["notificationLevel"] = wanted.level
        rule["notificationRecipients"] = list(dict.fromkeys(mailed))
        if wanted.default_recipients is not None:
            rule["isDefaultRecipientsEnabled"] = wanted.default_recipients
        if not same_rule(rule, current[wanted.id]):
            changes[wanted.id] = rule
    return changes


def notification_reaches(rule: Mapping[str, Any] | None, recipients: Sequence[str]) -> bool:
    """Whether the rule mails every one of ``recipients`` (any recipient at all when none are
    given) at a level that sends mail."""
    if not rule or str(rule.get("notificationLevel") or "").casefold() == "none":
        return False
    mailed = {str(a).casefold() for a in rule.get("notificationRecipients") or []}
    if not recipients:
        return bool(mailed)
    return all(a.casefold() in mailed for a in recipients)


def approval_signature(rule: Mapping[str, Any]) -> dict[str, Any]:
    """What matters in an approval rule when comparing live against what we set."""
    setting = rule.get("setting") or {}
    stages = setting.get("approvalStages") or []
    approvers = sorted(
        (a.get("@odata.type", ""), a.get("userId") or a.get("groupId") or "")
        for stage in stages
        for a in stage.get("primaryApprovers") or []
    )
    return {"required": bool(setting.get("isApprovalRequired")), "approvers": approvers}


def eligibility_expiration(
    current: Mapping[str, Rule], wanted: timedelta | None
) -> tuple[timedelta | None, str | None]:
    """How long a new eligible assignment may last under the role's rule.

    Returns (duration or None for permanent, a note when the rule forced a shorter one).
    """
    rule = current.get(EXPIRATION_ADMIN_ELIGIBILITY) or {}
    required = bool(rule.get("isExpirationRequired"))
    maximum = parse_duration(rule.get("maximumDuration"))
    if wanted is None and not required:
        return None, None
    if wanted is None:
        return maximum, (
            f"the role requires eligible assignments to expire; using its maximum "
            f"{rule.get('maximumDuration')}"
        )
    if maximum is not None and required and wanted > maximum:
        return maximum, (
            f"the role allows eligible assignments of at most {rule.get('maximumDuration')}; "
            f"using that instead of {iso_duration(wanted)}"
        )
    return wanted, None


def admin_mfa_blockers(current: Mapping[str, Rule]) -> list[str]:
    """Rules requiring MFA of the *admin* who assigns: an app cannot satisfy them."""
    return [
        rule_id
        for rule_id in (ENABLEMENT_ADMIN_ELIGIBILITY, ENABLEMENT_ADMIN_ASSIGNMENT)
        if MFA in (current.get(rule_id, {}).get("enabledRules") or [])
    ]
