"""From Graph's objects to the rows the monitoring reports read (no I/O).

Audit activity names: Entra's audit activity reference, PIM section (reference §11.1).
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.db.models import PimAuditRecord, PimRequestRecord
from app.graph.models import DirectoryAudit, ScheduleRequest, ScheduleRequestAction

ROLE_MANAGEMENT = "RoleManagement"
APPROVAL_REQUESTED = "Add member to role approval requested (PIM activation)"
ACTIVATION_EXPIRED = "PIM activation request expired"
ADDED_OUTSIDE_PIM = "Add member to role outside of PIM (permanent)"
ADDED_IN_PIM_PERMANENT = "Add member to role in PIM completed (permanent)"
PERMANENT_ADDITIONS = (ADDED_OUTSIDE_PIM, ADDED_IN_PIM_PERMANENT)

COLLECTED_ACTIONS = (ScheduleRequestAction.self_activate, ScheduleRequestAction.self_deactivate)
_PRINCIPAL_TARGETS = frozenset({"user", "group", "serviceprincipal"})


def aware(value: datetime | None) -> datetime | None:
    """Graph writes UTC with a ``Z``; anything without a zone is read as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def request_window(request: ScheduleRequest) -> tuple[datetime | None, datetime | None]:
    """When the requested activation starts and ends (``None`` end: no expiration)."""
    info = request.schedule_info
    start = aware(info.start_date_time) if info is not None else None
    expiration = info.expiration if info is not None else None
    if expiration is None:
        return start, None
    if expiration.end_date_time is not None:
        return start, aware(expiration.end_date_time)
    if expiration.duration is not None and start is not None:
        return start, start + expiration.duration
    return start, None


def new_request_row(
    tenant_id: str,
    request: ScheduleRequest,
    *,
    now: datetime,
    principal_name: str | None,
    max_duration_seconds: int | None,
) -> PimRequestRecord | None:
    """A row for a self-service request, or None for anything else (or a malformed one)."""
    action = request.action_kind
    requested_at = aware(request.created_date_time)
    if (
        action not in COLLECTED_ACTIONS
        or not request.principal_id
        or not request.role_definition_id
        or requested_at is None
    ):
        return None
    row = PimRequestRecord(
        tenant_id=tenant_id,
        request_id=request.id,
        action=action.value,
        status=request.status or "",
        principal_id=request.principal_id.lower(),
        principal_name=principal_name,
        role_definition_id=request.role_definition_id.lower(),
        directory_scope_id=request.directory_scope_id or "/",
        requested_at=requested_at,
        max_duration_seconds=max_duration_seconds,
        first_seen_at=now,
        updated_at=now,
    )
    update_request_row(row, request, now=now)
    return row


def is_collected(request: ScheduleRequest) -> bool:
    return request.action_kind in COLLECTED_ACTIONS


def update_request_row(row: PimRequestRecord, request: ScheduleRequest, *, now: datetime) -> bool:
    """Refresh what changes over a request's life (status, window, approval); True if it did."""
    start, end = request_window(request)
    ticket = request.ticket_info
    values = {
        "status": request.status or "",
        "completed_at": aware(request.completed_date_time),
        "start_at": start,
        "end_at": end,
        "approval_required": row.approval_required or bool(request.approval_id),
        "justification": (request.justification or None),
        "ticket_number": ((ticket.ticket_number or "").strip() or None) if ticket else None,
        "ticket_system": ((ticket.ticket_system or "").strip() or None) if ticket else None,
    }
    changed = any(getattr(row, key) != value for key, value in values.items())
    if changed:
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = now
    return changed


def _detail(audit: DirectoryAudit, key: str) -> str | None:
    folded = key.casefold()
    for item in audit.additional_details:
        if (item.key or "").casefold() == folded and item.value:
            return item.value
    return None


def _initiator(audit: DirectoryAudit) -> str | None:
    initiated = audit.initiated_by
    if initiated is None:
        return None
    if initiated.user is not None:
        user = initiated.user
        return user.user_principal_name or user.display_name or user.id
    if initiated.app is not None:
        return initiated.app.display_name or initiated.app.app_id
    return None


def audit_row(tenant_id: str, audit: DirectoryAudit, *, now: datetime) -> PimAuditRecord | None:
    """The parts of a RoleManagement audit record the reports use (None without a time)."""
    at = aware(audit.activity_date_time)
    if at is None:
        return None
    principal_id = role_id = None
    for target in audit.target_resources:
        kind = (target.type or "").casefold()
        if kind == "role" and target.id and role_id is None:
            role_id = target.id.lower()
        elif kind in _PRINCIPAL_TARGETS and target.id and principal_id is None:
            principal_id = target.id.lower()
    role_id = role_id or (_detail(audit, "RoleDefinitionOriginId") or "").lower() or None
    return PimAuditRecord(
        tenant_id=tenant_id,
        audit_id=audit.id[:200],
        activity=(audit.activity_display_name or "")[:300],
        activity_at=at,
        result=(audit.result or None),
        request_id=(_detail(audit, "RequestId") or audit.correlation_id or None),
        principal_id=principal_id,
        role_definition_id=role_id,
        initiated_by=(_initiator(audit) or "")[:300] or None,
        collected_at=now,
    )
