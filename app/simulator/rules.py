"""The 17 fixed rules of a directory role's PIM policy, with the doc sample's defaults.

Defaults are the doc sample ``roleManagementPolicyAssignments_list_filterRole_expandPolicyRules``
(reference §7.2), in the sample's order.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

EXPIRATION = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"
ENABLEMENT = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"
APPROVAL = "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule"
AUTH_CONTEXT = "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule"
NOTIFICATION = "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule"

ENABLEMENT_VALUES = ("MultiFactorAuthentication", "Justification", "Ticketing")
TARGET_OPERATIONS = (
    "all",
    "activate",
    "deactivate",
    "assign",
    "update",
    "remove",
    "extend",
    "renew",
    "unknownFutureValue",
)
MIN_ACTIVATION = timedelta(minutes=30)
MAX_ACTIVATION = timedelta(hours=24)


def _target(caller: str, level: str) -> dict[str, Any]:
    return {
        "caller": caller,
        "operations": ["all"],
        "level": level,
        "inheritableSettings": [],
        "enforcedSettings": [],
    }


def _notification(rule_id: str, recipient: str, caller: str, level: str) -> dict[str, Any]:
    return {
        "@odata.type": NOTIFICATION,
        "id": rule_id,
        "notificationType": "Email",
        "recipientType": recipient,
        "notificationLevel": "All",
        "isDefaultRecipientsEnabled": True,
        "notificationRecipients": [],
        "target": _target(caller, level),
    }


def default_rules() -> dict[str, dict[str, Any]]:
    """The 17 rules with the sample's default values, in the sample's order."""
    rules: list[dict[str, Any]] = [
        {
            "@odata.type": EXPIRATION,
            "id": "Expiration_Admin_Eligibility",
            "isExpirationRequired": False,
            "maximumDuration": "P365D",
            "target": _target("Admin", "Eligibility"),
        },
        {
            "@odata.type": ENABLEMENT,
            "id": "Enablement_Admin_Eligibility",
            "enabledRules": [],
            "target": _target("Admin", "Eligibility"),
        },
    ]
    for recipient in ("Admin", "Requestor", "Approver"):
        rules.append(
            _notification(
                f"Notification_{recipient}_Admin_Eligibility", recipient, "Admin", "Eligibility"
            )
        )
    rules += [
        {
            "@odata.type": EXPIRATION,
            "id": "Expiration_Admin_Assignment",
            "isExpirationRequired": False,
            "maximumDuration": "P180D",
            "target": _target("Admin", "Assignment"),
        },
        {
            "@odata.type": ENABLEMENT,
            "id": "Enablement_Admin_Assignment",
            "enabledRules": ["Justification"],
            "target": _target("Admin", "Assignment"),
        },
    ]
    for recipient in ("Admin", "Requestor", "Approver"):
        rules.append(
            _notification(
                f"Notification_{recipient}_Admin_Assignment", recipient, "Admin", "Assignment"
            )
        )
    rules += [
        {
            "@odata.type": EXPIRATION,
            "id": "Expiration_EndUser_Assignment",
            "isExpirationRequired": True,
            "maximumDuration": "PT8H",
            "target": _target("EndUser", "Assignment"),
        },
        {
            "@odata.type": ENABLEMENT,
            "id": "Enablement_EndUser_Assignment",
            "enabledRules": ["MultiFactorAuthentication", "Justification"],
            "target": _target("EndUser", "Assignment"),
        },
        {
            "@odata.type": APPROVAL,
            "id": "Approval_EndUser_Assignment",
            "target": _target("EndUser", "Assignment"),
            "setting": {
                "isApprovalRequired": False,
                "isApprovalRequiredForExtension": False,
                "isRequestorJustificationRequired": True,
                "approvalMode": "SingleStage",
                "approvalStages": [
                    {
                        "approvalStageTimeOutInDays": 1,
                        "isApproverJustificationRequired": True,
                        "escalationTimeInMinutes": 0,
                        "isEscalationEnabled": False,
                        "primaryApprovers": [],
                        "escalationApprovers": [],
                    }
                ],
            },
        },
        {
            "@odata.type": AUTH_CONTEXT,
            "id": "AuthenticationContext_EndUser_Assignment",
            "isEnabled": False,
            "claimValue": None,
            "target": _target("EndUser", "Assignment"),
        },
    ]
    for recipient in ("Admin", "Requestor", "Approver"):
        rules.append(
            _notification(
                f"Notification_{recipient}_EndUser_Assignment", recipient, "EndUser", "Assignment"
            )
        )
    return {rule["id"]: rule for rule in rules}
