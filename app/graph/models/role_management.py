"""Role definitions, assignments, PIM schedules, instances and requests (reference §3-§5)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field, JsonValue, field_validator, model_validator

from app.graph.models._base import (
    GraphEnum,
    GraphInput,
    GraphModel,
    IdentitySet,
    IsoDuration,
    same_text,
)
from app.graph.models.directory import DirectoryObject


class ScheduleRequestAction(GraphEnum):
    """``unifiedRoleScheduleRequestActions`` (reference §2.5)."""

    admin_assign = "adminAssign"
    admin_update = "adminUpdate"
    admin_remove = "adminRemove"
    self_activate = "selfActivate"
    self_deactivate = "selfDeactivate"
    admin_extend = "adminExtend"
    admin_renew = "adminRenew"
    self_extend = "selfExtend"
    self_renew = "selfRenew"
    unknown_future_value = "unknownFutureValue"


REMOVAL_ACTIONS = frozenset(
    {ScheduleRequestAction.admin_remove, ScheduleRequestAction.self_deactivate}
)


class ExpirationType(GraphEnum):
    """``expirationPatternType``."""

    not_specified = "notSpecified"
    no_expiration = "noExpiration"
    after_date_time = "afterDateTime"
    after_duration = "afterDuration"
    unknown_future_value = "unknownFutureValue"


class RequestStatus(GraphEnum):
    """The documented ``status`` strings of a schedule request (reference §5.3)."""

    canceled = "Canceled"
    denied = "Denied"
    failed = "Failed"
    granted = "Granted"
    pending_admin_decision = "PendingAdminDecision"
    pending_approval = "PendingApproval"
    pending_provisioning = "PendingProvisioning"
    pending_schedule_creation = "PendingScheduleCreation"
    provisioned = "Provisioned"
    revoked = "Revoked"
    schedule_created = "ScheduleCreated"


_SUCCESS = frozenset(
    s.casefold()
    for s in (RequestStatus.provisioned, RequestStatus.granted, RequestStatus.schedule_created)
)
_IN_FLIGHT = frozenset(
    s.casefold()
    for s in (RequestStatus.pending_provisioning, RequestStatus.pending_schedule_creation)
)
_WAITING_ON_HUMAN = frozenset(
    s.casefold() for s in (RequestStatus.pending_approval, RequestStatus.pending_admin_decision)
)
_FAILURE = frozenset(
    s.casefold() for s in (RequestStatus.denied, RequestStatus.failed, RequestStatus.canceled)
)


def _folded(status: str | None) -> str:
    return (status or "").casefold()


class RolePermission(GraphModel):
    allowed_resource_actions: list[str] = Field(default_factory=list)
    condition: str | None = None


class RoleDefinitionRef(GraphModel):
    id: str


class RoleDefinition(GraphModel):
    """``unifiedRoleDefinition``; for built-in roles ``id == templateId`` (reference §3)."""

    id: str
    display_name: str | None = None
    description: str | None = None
    is_built_in: bool | None = None
    is_enabled: bool | None = None
    template_id: str | None = None
    version: str | None = None
    resource_scopes: list[str] = Field(default_factory=list)
    role_permissions: list[RolePermission] = Field(default_factory=list)
    inherits_permissions_from: list[RoleDefinitionRef] = Field(default_factory=list)


class RoleAssignment(GraphModel):
    """An active ``unifiedRoleAssignment`` (permanent, time-bound or currently activated)."""

    id: str
    principal_id: str
    role_definition_id: str
    directory_scope_id: str | None = None
    app_scope_id: str | None = None
    condition: str | None = None
    principal: DirectoryObject | None = None


class Expiration(GraphModel):
    """``expirationPattern``: ``noExpiration``, ``afterDateTime`` + end, ``afterDuration``."""

    type: ExpirationType | None = None
    end_date_time: datetime | None = None
    duration: IsoDuration | None = None


class ScheduleInfo(GraphModel):
    """``requestSchedule``: when a request's assignment starts and how it expires."""

    start_date_time: datetime | None = None
    expiration: Expiration | None = None
    recurrence: JsonValue = None


class TicketInfo(GraphModel):
    ticket_number: str | None = None
    ticket_system: str | None = None


class _Schedule(GraphModel):
    id: str
    principal_id: str
    role_definition_id: str
    directory_scope_id: str | None = None
    app_scope_id: str | None = None
    created_using: str | None = None
    created_date_time: datetime | None = None
    modified_date_time: datetime | None = None
    status: str | None = None
    member_type: str | None = None
    schedule_info: ScheduleInfo | None = None
    principal: DirectoryObject | None = None

    @property
    def created_outside_pim(self) -> bool:
        """An assignment made outside PIM has no creating request (reference §4.2)."""
        return self.created_using is None


class RoleAssignmentSchedule(_Schedule):
    """``unifiedRoleAssignmentSchedule``: the durable record of an active assignment."""

    assignment_type: str | None = None


class RoleEligibilitySchedule(_Schedule):
    """``unifiedRoleEligibilitySchedule``: the durable record of an eligibility."""


class _Instance(GraphModel):
    id: str
    principal_id: str
    role_definition_id: str
    directory_scope_id: str | None = None
    app_scope_id: str | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    member_type: str | None = None
    principal: DirectoryObject | None = None

    @property
    def is_direct(self) -> bool:
        return same_text(self.member_type, "Direct")

    @property
    def is_permanent(self) -> bool:
        return self.end_date_time is None


class RoleAssignmentScheduleInstance(_Instance):
    """An active assignment as PIM sees it now (``Assigned`` or ``Activated``)."""

    assignment_type: str | None = None
    role_assignment_origin_id: str | None = None
    role_assignment_schedule_id: str | None = None

    @property
    def is_activated(self) -> bool:
        return same_text(self.assignment_type, "Activated")


class RoleEligibilityScheduleInstance(_Instance):
    role_eligibility_schedule_id: str | None = None


class ExpirationCreate(GraphInput):
    type: ExpirationType
    end_date_time: AwareDatetime | None = None
    duration: IsoDuration | None = None

    @field_validator("type")
    @classmethod
    def _specific(cls, value: ExpirationType) -> ExpirationType:
        if value in (ExpirationType.not_specified, ExpirationType.unknown_future_value):
            raise ValueError("use noExpiration, afterDateTime or afterDuration")
        return value

    @model_validator(mode="after")
    def _end_matches_type(self) -> ExpirationCreate:
        if self.type is ExpirationType.after_date_time and self.end_date_time is None:
            raise ValueError("afterDateTime needs endDateTime")
        if self.type is ExpirationType.after_duration and self.duration is None:
            raise ValueError("afterDuration needs duration")
        if self.type is ExpirationType.no_expiration and (self.end_date_time or self.duration):
            raise ValueError("noExpiration takes neither endDateTime nor duration")
        return self


class ScheduleInfoCreate(GraphInput):
    """When a requested assignment starts and how it ends. Aware datetimes only."""

    start_date_time: AwareDatetime | None = None
    expiration: ExpirationCreate


class TicketInfoCreate(GraphInput):
    ticket_number: str | None = None
    ticket_system: str | None = None


class ScheduleRequestCreate(GraphInput):
    """Body of ``POST …/roleEligibilityScheduleRequests`` / ``…/roleAssignmentScheduleRequests``.

    Enum values are sent camelCase (reference §2.5) whatever case they were given in.
    """

    action: ScheduleRequestAction
    principal_id: str
    role_definition_id: str
    directory_scope_id: str = "/"
    justification: str | None = None
    schedule_info: ScheduleInfoCreate | None = None
    ticket_info: TicketInfoCreate | None = None
    is_validation_only: bool | None = None
    custom_data: str | None = None


class ScheduleRequest(GraphModel):
    """A role eligibility or assignment schedule request as Graph returns it."""

    id: str
    status: str | None = None
    action: str | None = None
    principal_id: str | None = None
    role_definition_id: str | None = None
    directory_scope_id: str | None = None
    app_scope_id: str | None = None
    is_validation_only: bool | None = None
    target_schedule_id: str | None = None
    justification: str | None = None
    custom_data: str | None = None
    approval_id: str | None = None
    created_date_time: datetime | None = None
    completed_date_time: datetime | None = None
    created_by: IdentitySet | None = None
    schedule_info: ScheduleInfo | None = None
    ticket_info: TicketInfo | None = None

    @property
    def action_kind(self) -> ScheduleRequestAction | None:
        """``action`` as an enum member, or ``None`` for a value this client doesn't know."""
        if self.action is None:
            return None
        try:
            return ScheduleRequestAction(self.action)
        except ValueError:
            return None

    @property
    def is_success(self) -> bool:
        """Done as asked: ``Provisioned``/``Granted``/``ScheduleCreated``, or ``Revoked`` for a
        removal (``adminRemove`` answers ``Revoked``)."""
        if _folded(self.status) in _SUCCESS:
            return True
        return _folded(self.status) == RequestStatus.revoked.casefold() and (
            self.action_kind in REMOVAL_ACTIONS
        )

    @property
    def is_pending(self) -> bool:
        """In flight: poll ``GET …/{id}`` (``PendingProvisioning``/``PendingScheduleCreation``)."""
        return _folded(self.status) in _IN_FLIGHT

    @property
    def is_waiting_on_human(self) -> bool:
        """``PendingApproval``/``PendingAdminDecision``."""
        return _folded(self.status) in _WAITING_ON_HUMAN

    @property
    def is_failure(self) -> bool:
        """Terminal failure: ``Denied``/``Failed``/``Canceled``."""
        return _folded(self.status) in _FAILURE
