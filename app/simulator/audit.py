"""Directory audit records written by the simulated PIM service.

Shape: ``directoryAudits_list_filterInitiatedBy`` sample (the newer one, lower-case ``type``).
Activity names: Entra "Audit log activities" reference, PIM section, category RoleManagement
(``MicrosoftDocs/entra-docs`` ``docs/identity/monitoring-health/reference-audit-activities.md``),
reference §11.1. ``loggedByService`` is ``"PIM"`` as third-party queries observe (§11.1 [obs]).
The ``additionalDetails`` keys (Justification, TicketNumber, …) are undocumented; ours are
descriptive and stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from app.simulator.state import AuditRecord, Group, ServicePrincipal, SimState, User
from app.simulator.timefmt import format_datetime

PIM_SERVICE = "PIM"
ROLE_MANAGEMENT = "RoleManagement"
SYSTEM_APP_NAME = "MS-PIM"


@dataclass(frozen=True)
class Initiator:
    """Who did it: the calling app (app-only token), a user, or PIM itself (expiry)."""

    kind: Literal["app", "user", "system"]
    id: str = ""


def _initiated_by(state: SimState, initiator: Initiator) -> dict[str, Any]:
    if initiator.kind == "user":
        user = state.users.get(initiator.id)
        return {
            "app": None,
            "user": {
                "id": initiator.id,
                "displayName": user.display_name if user else None,
                "userPrincipalName": user.user_principal_name if user else None,
                "ipAddress": "10.0.0.0",
                "userType": None,
                "homeTenantId": None,
                "homeTenantName": None,
            },
        }
    if initiator.kind == "app":
        return {
            "app": {
                "appId": state.caller_app_id,
                "displayName": state.caller_app_name,
                "servicePrincipalId": state.caller_service_principal_id,
                "servicePrincipalName": state.caller_app_name,
            },
            "user": None,
        }
    return {
        "app": {
            "appId": None,
            "displayName": SYSTEM_APP_NAME,
            "servicePrincipalId": None,
            "servicePrincipalName": SYSTEM_APP_NAME,
        },
        "user": None,
    }


def principal_target(state: SimState, principal_id: str) -> dict[str, Any]:
    principal = state.principal(principal_id)
    kind = "User"
    upn = None
    if isinstance(principal, Group):
        kind = "Group"
    elif isinstance(principal, ServicePrincipal):
        kind = "ServicePrincipal"
    elif isinstance(principal, User):
        upn = principal.user_principal_name
    return {
        "id": principal_id,
        "displayName": principal.display_name if principal else None,
        "type": kind,
        "userPrincipalName": upn,
        "groupType": None,
        "modifiedProperties": [],
    }


def role_target(state: SimState, role_id: str) -> dict[str, Any]:
    role = state.roles.get(role_id)
    return {
        "id": role_id,
        "displayName": role.display_name if role else None,
        "type": "Role",
        "userPrincipalName": None,
        "groupType": None,
        "modifiedProperties": [],
    }


def record(
    state: SimState,
    *,
    at: datetime,
    activity: str,
    operation_type: str,
    initiator: Initiator,
    targets: list[dict[str, Any]],
    details: dict[str, str | None] | None = None,
    correlation_id: str | None = None,
    category: str = ROLE_MANAGEMENT,
    service: str = PIM_SERVICE,
    result: str = "success",
    result_reason: str = "",
) -> AuditRecord:
    audit_id = f"PIM_{state.ids.guid()}"
    body: dict[str, Any] = {
        "id": audit_id,
        "category": category,
        "correlationId": correlation_id or state.ids.guid(),
        "result": result,
        "resultReason": result_reason,
        "activityDisplayName": activity,
        "activityDateTime": format_datetime(at),
        "loggedByService": service,
        "operationType": operation_type,
        "initiatedBy": _initiated_by(state, initiator),
        "targetResources": targets,
        "additionalDetails": [
            {"key": key, "value": value}
            for key, value in (details or {}).items()
            if value is not None
        ],
    }
    return state.add_audit(AuditRecord(audit_id, at, body))


def record_role_change(
    state: SimState,
    *,
    at: datetime,
    activity: str,
    operation_type: str,
    initiator: Initiator,
    principal_id: str,
    role_id: str,
    request_id: str | None,
    justification: str | None = None,
    ticket_number: str | None = None,
    ticket_system: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> AuditRecord:
    details = {
        "RequestId": request_id,
        "Justification": justification,
        "TicketNumber": ticket_number,
        "TicketSystem": ticket_system,
        "StartTime": format_datetime(start) if start else None,
        "ExpirationTime": format_datetime(end) if end else None,
        "RoleDefinitionOriginId": role_id,
    }
    return record(
        state,
        at=at,
        activity=activity,
        operation_type=operation_type,
        initiator=initiator,
        targets=[role_target(state, role_id), principal_target(state, principal_id)],
        details=details,
        correlation_id=request_id,
    )
