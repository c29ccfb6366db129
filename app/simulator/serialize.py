"""Graph JSON for the simulator's objects, property names exactly as in the doc samples."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from app.simulator.catalog import RoleDefinition
from app.simulator.ids import eligibility_instance_id, role_assignment_id
from app.simulator.state import (
    Group,
    Policy,
    Principal,
    Schedule,
    ScheduleRequest,
    ServicePrincipal,
    SimState,
    Sku,
    User,
)
from app.simulator.timefmt import format_datetime, format_optional

USER_PROPERTIES = (
    "id",
    "displayName",
    "userPrincipalName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "userType",
    "accountEnabled",
    "jobTitle",
    "department",
    "businessPhones",
    "imAddresses",
    "identities",
    "onPremisesSyncEnabled",
)
GROUP_PROPERTIES = (
    "id",
    "displayName",
    "description",
    "mailNickname",
    "mail",
    "mailEnabled",
    "securityEnabled",
    "isAssignableToRole",
    "groupTypes",
)
SERVICE_PRINCIPAL_PROPERTIES = (
    "id",
    "appId",
    "displayName",
    "servicePrincipalType",
    "accountEnabled",
)


def identities(u: User) -> list[dict[str, str | None]]:
    """What Graph reports: members sign in with their UPN; guests through their home issuer."""
    if u.identities:
        return [dict(identity) for identity in u.identities]
    if u.user_type == "Guest":
        return [{"signInType": "federated", "issuer": "ExternalAzureAD", "issuerAssignedId": None}]
    return [
        {
            "signInType": "userPrincipalName",
            "issuer": u.user_principal_name.split("@")[-1],
            "issuerAssignedId": u.user_principal_name,
        }
    ]


def user(u: User, *, typed: bool = False, selected: bool = False) -> dict[str, Any]:
    """A user as Graph returns it; ``identities`` and ``onPremisesSyncEnabled`` are not default
    properties, only ``$select``ed (user resource: "Returned only on $select")."""
    body: dict[str, Any] = {"@odata.type": "#microsoft.graph.user"} if typed else {}
    body.update(
        {
            "id": u.id,
            "displayName": u.display_name,
            "userPrincipalName": u.user_principal_name,
            "givenName": u.given_name,
            "surname": u.surname,
            "mail": u.mail,
            "mailNickname": u.user_principal_name.split("@")[0],
            "userType": u.user_type,
            "accountEnabled": u.account_enabled,
            "jobTitle": u.job_title,
            "department": u.department,
            "businessPhones": [],
            "imAddresses": [u.mail] if u.mail else [],
        }
    )
    if selected:
        body["identities"] = identities(u)
        body["onPremisesSyncEnabled"] = u.on_premises_sync_enabled
    return body


def group(g: Group, *, typed: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.type": "#microsoft.graph.group"} if typed else {}
    body.update(
        {
            "id": g.id,
            "displayName": g.display_name,
            "description": g.description,
            "mailNickname": g.mail_nickname,
            "mail": None,
            "mailEnabled": g.mail_enabled,
            "securityEnabled": g.security_enabled,
            "isAssignableToRole": g.is_assignable_to_role,
            "groupTypes": [],
        }
    )
    return body


def service_principal(sp: ServicePrincipal, *, typed: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.type": "#microsoft.graph.servicePrincipal"} if typed else {}
    body.update(
        {
            "id": sp.id,
            "appId": sp.app_id,
            "displayName": sp.display_name,
            "servicePrincipalType": sp.service_principal_type,
            "accountEnabled": sp.account_enabled,
        }
    )
    return body


def principal(p: Principal) -> dict[str, Any]:
    """A principal as a directoryObject: always with its ``@odata.type``."""
    if isinstance(p, User):
        return user(p, typed=True)
    if isinstance(p, Group):
        return group(p, typed=True)
    return service_principal(p, typed=True)


def role_definition(role: RoleDefinition) -> dict[str, Any]:
    return {
        "id": role.id,
        "description": role.description,
        "displayName": role.display_name,
        "isBuiltIn": True,
        "isEnabled": True,
        "resourceScopes": ["/"],
        "templateId": role.id,
        "version": "1",
        "rolePermissions": [{"allowedResourceActions": list(role.actions), "condition": None}],
        "inheritsPermissionsFrom": [{"id": parent} for parent in role.inherits_from],
    }


def _expiration(schedule: Schedule) -> dict[str, Any]:
    if schedule.end is None:
        return {"type": "noExpiration", "endDateTime": None, "duration": None}
    return {"type": "afterDateTime", "endDateTime": format_datetime(schedule.end), "duration": None}


def _schedule_info(schedule: Schedule) -> dict[str, Any]:
    return {
        "startDateTime": format_datetime(schedule.start or schedule.assigned_at),
        "recurrence": None,
        "expiration": _expiration(schedule),
    }


def role_assignment(schedule: Schedule) -> dict[str, Any]:
    """A ``unifiedRoleAssignment``: the effective grant behind an active schedule."""
    return {
        "id": role_assignment_id(schedule.role_definition_id, schedule.principal_id),
        "principalId": schedule.principal_id,
        "roleDefinitionId": schedule.role_definition_id,
        "directoryScopeId": schedule.directory_scope_id,
        "appScopeId": None,
        "resourceScope": schedule.directory_scope_id,
        "condition": None,
    }


def _schedule_status(schedule: Schedule, now: datetime) -> str:
    return "Granted" if schedule.start is not None and schedule.start > now else "Provisioned"


def assignment_schedule(schedule: Schedule, now: datetime) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "principalId": schedule.principal_id,
        "roleDefinitionId": schedule.role_definition_id,
        "directoryScopeId": schedule.directory_scope_id,
        "appScopeId": None,
        "createdUsing": schedule.created_using,
        "createdDateTime": format_optional(schedule.created_at),
        "modifiedDateTime": format_optional(schedule.modified_at),
        "status": _schedule_status(schedule, now),
        "assignmentType": schedule.assignment_type,
        "memberType": "Direct",
        "scheduleInfo": _schedule_info(schedule),
    }


def eligibility_schedule(schedule: Schedule, now: datetime) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "principalId": schedule.principal_id,
        "roleDefinitionId": schedule.role_definition_id,
        "directoryScopeId": schedule.directory_scope_id,
        "appScopeId": None,
        "createdUsing": schedule.created_using,
        "createdDateTime": format_optional(schedule.created_at),
        "modifiedDateTime": format_optional(schedule.modified_at),
        "status": _schedule_status(schedule, now),
        "memberType": "Direct",
        "scheduleInfo": _schedule_info(schedule),
    }


def _member_instance_id(role_id: str, member_id: str, group_id: str) -> str:
    # Graph does not document ids of group-derived instances; ours keep the base64url style.
    raw = uuid.UUID(role_id).bytes_le + uuid.UUID(member_id).bytes_le + uuid.UUID(group_id).bytes_le
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") + "-1"


def instance_members(state: SimState, schedule: Schedule) -> Iterator[str | None]:
    """``None`` for the schedule's own instance, then each user/SP member of an assigned group."""
    yield None
    if schedule.principal_id in state.groups:
        for member in state.transitive_members(schedule.principal_id):
            if not isinstance(member, Group):
                yield member.id


def assignment_instance(schedule: Schedule, member_id: str | None = None) -> dict[str, Any]:
    origin = role_assignment_id(schedule.role_definition_id, schedule.principal_id)
    return {
        "id": _member_instance_id(schedule.role_definition_id, member_id, schedule.principal_id)
        if member_id
        else origin,
        "principalId": member_id or schedule.principal_id,
        "roleDefinitionId": schedule.role_definition_id,
        "directoryScopeId": schedule.directory_scope_id,
        "appScopeId": None,
        "startDateTime": format_optional(schedule.start),
        "endDateTime": format_optional(schedule.end),
        "assignmentType": schedule.assignment_type,
        "memberType": "Group" if member_id else "Direct",
        "roleAssignmentOriginId": origin,
        "roleAssignmentScheduleId": schedule.id,
    }


def eligibility_instance(schedule: Schedule, member_id: str | None = None) -> dict[str, Any]:
    return {
        "id": _member_instance_id(schedule.role_definition_id, member_id, schedule.principal_id)
        + "-e"
        if member_id
        else eligibility_instance_id(schedule.role_definition_id, schedule.principal_id),
        "principalId": member_id or schedule.principal_id,
        "roleDefinitionId": schedule.role_definition_id,
        "directoryScopeId": schedule.directory_scope_id,
        "appScopeId": None,
        "startDateTime": format_optional(schedule.start),
        "endDateTime": format_optional(schedule.end),
        "memberType": "Group" if member_id else "Direct",
        "roleEligibilityScheduleId": schedule.id,
    }


def schedule_request(request: ScheduleRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "status": request.status,
        "createdDateTime": format_datetime(request.created_at),
        "completedDateTime": format_optional(request.completed_at),
        "approvalId": request.approval_id,
        "customData": request.custom_data,
        "action": request.action,
        "principalId": request.principal_id,
        "roleDefinitionId": request.role_definition_id,
        "directoryScopeId": request.directory_scope_id,
        "appScopeId": request.app_scope_id,
        "isValidationOnly": request.is_validation_only,
        "targetScheduleId": request.target_schedule_id,
        "justification": request.justification,
        "createdBy": request.created_by,
        "scheduleInfo": request.schedule_info,
        "ticketInfo": {
            "ticketNumber": request.ticket_number,
            "ticketSystem": request.ticket_system,
        },
    }


def policy_id_for_scope(policy: Policy, scope_type: str) -> str:
    """``DirectoryRole_…`` and ``Directory_…`` ids name the same policy (reference §7.1)."""
    suffix = policy.id.split("_", 1)[1]
    return f"{scope_type}_{suffix}"


def policy(p: Policy, scope_type: str = "DirectoryRole") -> dict[str, Any]:
    return {
        "id": policy_id_for_scope(p, scope_type),
        "displayName": scope_type,
        "description": scope_type,
        "isOrganizationDefault": False,
        "scopeId": "/",
        "scopeType": scope_type,
        "lastModifiedDateTime": format_optional(p.last_modified_at),
        "lastModifiedBy": p.last_modified_by or {"displayName": None, "id": None},
    }


def policy_assignment(p: Policy, scope_type: str = "DirectoryRole") -> dict[str, Any]:
    policy_id = policy_id_for_scope(p, scope_type)
    return {
        "id": f"{policy_id}_{p.role_definition_id}",
        "policyId": policy_id,
        "scopeId": "/",
        "scopeType": scope_type,
        "roleDefinitionId": p.role_definition_id,
    }


def sku(state: SimState, s: Sku) -> dict[str, Any]:
    return {
        "accountName": state.tenant_name,
        "accountId": s.account_id,
        "appliesTo": "User",
        "capabilityStatus": s.capability_status,
        "consumedUnits": s.consumed_units,
        "id": f"{state.tenant_id}_{s.template.sku_id}",
        "prepaidUnits": {"enabled": s.enabled_units, "lockedOut": 0, "suspended": 0, "warning": 0},
        "servicePlans": [
            {
                "servicePlanId": plan_id,
                "servicePlanName": name,
                "provisioningStatus": "Success",
                "appliesTo": applies_to,
            }
            for plan_id, name, applies_to in s.template.plans
        ],
        "skuId": s.template.sku_id,
        "skuPartNumber": s.template.part_number,
        "subscriptionIds": [s.subscription_id],
    }


def organization(state: SimState) -> dict[str, Any]:
    return {
        "id": state.tenant_id,
        "displayName": state.tenant_name,
        "tenantType": "AAD",
        "verifiedDomains": [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": True,
                "isInitial": False,
                "name": state.domain,
                "type": "Managed",
            }
        ],
        "createdDateTime": format_datetime(state.created_at),
    }
