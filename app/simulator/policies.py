"""Role management policies: reading their rules and validating a rule PATCH.

The rules and their defaults live in :mod:`app.simulator.rules`. PATCH rules (reference §7.3 and
domain-facts.md):

* the body carries the rule's derived ``@odata.type``; ``id`` (when sent) names the same rule;
* ExpirationRule: ``isExpirationRequired: true`` needs a ``maximumDuration``; activation maximum
  (``Expiration_EndUser_Assignment``) is 30 minutes to 24 hours (MicrosoftDocs/azure-docs#51581);
* EnablementRule: ``enabledRules`` ⊆ {MultiFactorAuthentication, Justification, Ticketing}, and
  ``Ticketing`` only on ``Enablement_EndUser_Assignment`` (EasyPIM#239/PR#240);
* MFA on activation together with an enabled authentication-context rule → ``MfaAndAcrsConflict``
  (EasyPIM#121);
* ApprovalRule: approval required needs at least one primary approver; approvers reference users
  (``#microsoft.graph.singleUser``) or groups (``#microsoft.graph.groupMembers``) that exist;
* NotificationRule: ``notificationType`` Email, ``notificationLevel`` None/Critical/All,
  ``recipientType`` fixed by the rule id, ``isDefaultRecipientsEnabled`` a boolean and
  ``notificationRecipients`` a list of e-mail addresses.
"""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from typing import Any

from app.simulator.errors import INVALID_POLICY_RULE, MFA_AND_ACRS_CONFLICT, GraphError, not_found
from app.simulator.rules import (
    APPROVAL,
    AUTH_CONTEXT,
    ENABLEMENT,
    ENABLEMENT_VALUES,
    EXPIRATION,
    MAX_ACTIVATION,
    MIN_ACTIVATION,
    TARGET_OPERATIONS,
)
from app.simulator.state import Policy, SimState
from app.simulator.timefmt import format_duration, parse_duration


# --- reading rules ---------------------------------------------------------------------------
def expiration(policy: Policy, rule_id: str) -> tuple[bool, timedelta | None]:
    rule = policy.rules[rule_id]
    maximum = rule.get("maximumDuration")
    return bool(rule.get("isExpirationRequired")), parse_duration(maximum) if maximum else None


def enabled_rules(policy: Policy, rule_id: str) -> set[str]:
    return set(policy.rules[rule_id].get("enabledRules") or [])


def approval_setting(policy: Policy) -> dict[str, Any]:
    setting: dict[str, Any] = policy.rules["Approval_EndUser_Assignment"].get("setting") or {}
    return setting


def approval_required(policy: Policy) -> bool:
    return bool(approval_setting(policy).get("isApprovalRequired"))


def auth_context(policy: Policy) -> tuple[bool, str | None]:
    rule = policy.rules["AuthenticationContext_EndUser_Assignment"]
    return bool(rule.get("isEnabled")), rule.get("claimValue")


def primary_approver_ids(state: SimState, policy: Policy) -> set[str] | None:
    """User ids allowed to approve activations; None when no approver is configured."""
    approvers: set[str] = set()
    configured = False
    for stage in approval_setting(policy).get("approvalStages") or []:
        for subject in stage.get("primaryApprovers") or []:
            configured = True
            kind = str(subject.get("@odata.type", "")).lstrip("#").lower()
            if kind == "microsoft.graph.singleuser" and subject.get("userId"):
                approvers.add(str(subject["userId"]))
            elif kind == "microsoft.graph.groupmembers" and subject.get("groupId"):
                approvers.update(m.id for m in state.transitive_members(str(subject["groupId"])))
    return approvers if configured else None


# --- PATCH -----------------------------------------------------------------------------------
def _invalid(message: str) -> GraphError:
    return GraphError(400, INVALID_POLICY_RULE, message)


def _bool(body: dict[str, Any], name: str) -> bool | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, bool):
        raise _invalid(f"'{name}' must be a boolean.")
    return value


def _canonical(value: object, allowed: tuple[str, ...], name: str) -> str:
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    raise _invalid(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}.")


def _validate_target(current: dict[str, Any], sent: object) -> dict[str, Any]:
    if not isinstance(sent, dict):
        raise _invalid("'target' must be an object.")
    merged = copy.deepcopy(current)
    for name in ("caller", "level"):
        if name in sent and str(sent[name]).lower() != str(current[name]).lower():
            raise _invalid(
                f"target.{name} of this rule is {current[name]!r} and cannot be changed."
            )
    if "operations" in sent:
        operations = sent["operations"]
        if not isinstance(operations, list) or not operations:
            raise _invalid("target.operations must be a non-empty list.")
        # Stored as the camelCase enum member: the docs send "All", metadata declares "all" and
        # GET shows "all" (reference §2.5).
        merged["operations"] = [
            _canonical(operation, TARGET_OPERATIONS, "target.operations")
            for operation in operations
        ]
    for name in ("inheritableSettings", "enforcedSettings"):
        if name in sent:
            if not isinstance(sent[name], list):
                raise _invalid(f"target.{name} must be a list.")
            merged[name] = list(sent[name])
    return merged


def _validate_expiration(rule_id: str, body: dict[str, Any], merged: dict[str, Any]) -> None:
    required = _bool(body, "isExpirationRequired")
    if required is not None:
        merged["isExpirationRequired"] = required
    if "maximumDuration" in body:
        raw = body["maximumDuration"]
        if raw is None:
            merged["maximumDuration"] = None
        else:
            try:
                duration = parse_duration(str(raw))
            except ValueError as exc:
                raise _invalid(f"maximumDuration: {exc}") from None
            if duration <= timedelta(0):
                raise _invalid("maximumDuration must be positive.")
            merged["maximumDuration"] = format_duration(duration)
    if required and not body.get("maximumDuration"):
        raise _invalid("isExpirationRequired is true, so maximumDuration is required.")
    if rule_id == "Expiration_EndUser_Assignment" and merged.get("maximumDuration"):
        duration = parse_duration(merged["maximumDuration"])
        if not MIN_ACTIVATION <= duration <= MAX_ACTIVATION:
            raise _invalid(
                "The activation maximum duration must be between 30 minutes (PT30M) and "
                "24 hours (PT24H)."
            )


def _validate_enablement(
    policy: Policy, rule_id: str, body: dict[str, Any], merged: dict[str, Any]
) -> None:
    if "enabledRules" not in body:
        return
    values = body["enabledRules"]
    if not isinstance(values, list):
        raise _invalid("enabledRules must be a list.")
    canonical = [_canonical(v, ENABLEMENT_VALUES, "enabledRules") for v in values]
    if "Ticketing" in canonical and rule_id != "Enablement_EndUser_Assignment":
        raise _invalid(
            "Ticketing can only be required on activation (Enablement_EndUser_Assignment)."
        )
    if (
        rule_id == "Enablement_EndUser_Assignment"
        and "MultiFactorAuthentication" in canonical
        and auth_context(policy)[0]
    ):
        raise GraphError(
            400,
            MFA_AND_ACRS_CONFLICT,
            "Multifactor authentication and Conditional Access authentication context cannot "
            "both be required on activation.",
        )
    merged["enabledRules"] = list(dict.fromkeys(canonical))


def _validate_approvers(state: SimState, subjects: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(subjects, list):
        raise _invalid(f"{where} must be a list.")
    for subject in subjects:
        if not isinstance(subject, dict):
            raise _invalid(f"{where} items must be objects.")
        kind = str(subject.get("@odata.type", "")).lstrip("#").lower()
        if kind == "microsoft.graph.singleuser":
            if str(subject.get("userId")) not in state.users:
                raise _invalid(f"{where}: user {subject.get('userId')!r} does not exist.")
        elif kind == "microsoft.graph.groupmembers":
            if str(subject.get("groupId")) not in state.groups:
                raise _invalid(f"{where}: group {subject.get('groupId')!r} does not exist.")
        else:
            raise _invalid(
                f"{where}: approvers must be #microsoft.graph.singleUser or "
                f"#microsoft.graph.groupMembers subject sets; got {subject.get('@odata.type')!r}."
            )
    return [dict(s) for s in subjects]


def _validate_approval(state: SimState, body: dict[str, Any], merged: dict[str, Any]) -> None:
    if "setting" not in body:
        return
    sent = body["setting"]
    if not isinstance(sent, dict):
        raise _invalid("setting must be an object.")
    setting = copy.deepcopy(merged.get("setting") or {})
    for name in (
        "isApprovalRequired",
        "isApprovalRequiredForExtension",
        "isRequestorJustificationRequired",
    ):
        value = _bool(sent, name)
        if value is not None:
            setting[name] = value
    if "approvalMode" in sent:
        setting["approvalMode"] = _canonical(
            sent["approvalMode"],
            ("SingleStage", "Serial", "Parallel", "NoApproval"),
            "approvalMode",
        )
    if "approvalStages" in sent:
        stages = sent["approvalStages"]
        if not isinstance(stages, list):
            raise _invalid("approvalStages must be a list.")
        clean: list[dict[str, Any]] = []
        for index, stage in enumerate(stages):
            if not isinstance(stage, dict):
                raise _invalid("approvalStages items must be objects.")
            item = {k: v for k, v in stage.items() if k != "@odata.type"}
            timeout = item.get("approvalStageTimeOutInDays", 1)
            if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
                raise _invalid("approvalStageTimeOutInDays must be a positive integer.")
            where = f"approvalStages[{index}]"
            item["primaryApprovers"] = _validate_approvers(
                state, item.get("primaryApprovers", []), f"{where}.primaryApprovers"
            )
            item["escalationApprovers"] = _validate_approvers(
                state, item.get("escalationApprovers", []), f"{where}.escalationApprovers"
            )
            clean.append(item)
        setting["approvalStages"] = clean
    if setting.get("isApprovalRequired") and not any(
        stage.get("primaryApprovers") for stage in setting.get("approvalStages") or []
    ):
        raise _invalid("Approval is required, so at least one primary approver is required.")
    merged["setting"] = setting


def _validate_auth_context(policy: Policy, body: dict[str, Any], merged: dict[str, Any]) -> None:
    enabled = _bool(body, "isEnabled")
    if enabled is not None:
        merged["isEnabled"] = enabled
    if "claimValue" in body:
        claim = body["claimValue"]
        if claim is not None and not isinstance(claim, str):
            raise _invalid("claimValue must be a string.")
        merged["claimValue"] = claim
    if merged.get("isEnabled") and not merged.get("claimValue"):
        raise _invalid("An enabled authentication context rule needs a claimValue (e.g. 'c1').")
    if merged.get("isEnabled") and "MultiFactorAuthentication" in enabled_rules(
        policy, "Enablement_EndUser_Assignment"
    ):
        raise GraphError(
            400,
            MFA_AND_ACRS_CONFLICT,
            "Conditional Access authentication context cannot be required while multifactor "
            "authentication is required on activation.",
        )


# Not documented: what Graph answers for a malformed recipient. A recipient is an e-mail
# address (reference §7.2); the simulator refuses anything else, with the rule error it uses.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254


def _validate_notification(body: dict[str, Any], merged: dict[str, Any]) -> None:
    if "notificationType" in body:
        merged["notificationType"] = _canonical(
            body["notificationType"], ("Email",), "notificationType"
        )
    if "recipientType" in body:
        recipient = _canonical(
            body["recipientType"], ("Requestor", "Approver", "Admin"), "recipientType"
        )
        if recipient != merged["recipientType"]:
            raise _invalid("recipientType of this rule is fixed by its id.")
    if "notificationLevel" in body:
        merged["notificationLevel"] = _canonical(
            body["notificationLevel"], ("None", "Critical", "All"), "notificationLevel"
        )
    value = _bool(body, "isDefaultRecipientsEnabled")
    if value is not None:
        merged["isDefaultRecipientsEnabled"] = value
    if "notificationRecipients" in body:
        recipients = body["notificationRecipients"]
        if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
            raise _invalid("notificationRecipients must be a list of e-mail addresses.")
        for recipient in recipients:
            if len(recipient) > MAX_EMAIL_LENGTH or not _EMAIL.match(recipient):
                raise _invalid(f"notificationRecipients: {recipient!r} is not an e-mail address.")
        merged["notificationRecipients"] = list(recipients)


def patch_rule(state: SimState, policy: Policy, rule_id: str, body: object) -> dict[str, Any]:
    """Validate a PATCH body against the rule and return the updated rule (not yet stored)."""
    current = next((r for k, r in policy.rules.items() if k.lower() == rule_id.lower()), None)
    if current is None:
        raise not_found(f"The rule '{rule_id}' does not exist on policy '{policy.id}'.")
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    sent_type = body.get("@odata.type")
    if not sent_type:
        raise _invalid(f"@odata.type is required; this rule is {current['@odata.type']}.")
    if str(sent_type).lstrip("#").lower() != current["@odata.type"].lstrip("#").lower():
        raise _invalid(
            f"@odata.type {sent_type!r} does not match rule {current['id']} "
            f"({current['@odata.type']})."
        )
    if "id" in body and str(body["id"]).lower() != current["id"].lower():
        raise _invalid(f"Body id {body['id']!r} does not match the rule id {current['id']!r}.")
    merged = copy.deepcopy(current)
    if "target" in body:
        merged["target"] = _validate_target(current["target"], body["target"])
    rule_type = current["@odata.type"]
    if rule_type == EXPIRATION:
        _validate_expiration(current["id"], body, merged)
    elif rule_type == ENABLEMENT:
        _validate_enablement(policy, current["id"], body, merged)
    elif rule_type == APPROVAL:
        _validate_approval(state, body, merged)
    elif rule_type == AUTH_CONTEXT:
        _validate_auth_context(policy, body, merged)
    else:
        _validate_notification(body, merged)
    return merged
