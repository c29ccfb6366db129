"""Role management policies and their 17 fixed rules (reference §7).

A rule read from Graph keeps every property it came with, known or not, so the snapshot taken
before a change can be PATCHed back byte for byte (``to_patch_body``). Rules are a union
discriminated on ``@odata.type``; a rule type this client doesn't know parses as
:class:`UnknownPolicyRule` instead of failing.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import Discriminator, Field, Tag, TypeAdapter

from app.graph.models._base import (
    ODATA_CONTEXT,
    ODATA_TYPE,
    GraphModel,
    Identity,
    JsonObject,
    TypedGraphModel,
    format_iso_duration,
)

RULE_TYPE_PREFIX = "#microsoft.graph.unifiedRoleManagementPolicy"
EXPIRATION_RULE = RULE_TYPE_PREFIX + "ExpirationRule"
ENABLEMENT_RULE = RULE_TYPE_PREFIX + "EnablementRule"
APPROVAL_RULE = RULE_TYPE_PREFIX + "ApprovalRule"
AUTHENTICATION_CONTEXT_RULE = RULE_TYPE_PREFIX + "AuthenticationContextRule"
NOTIFICATION_RULE = RULE_TYPE_PREFIX + "NotificationRule"
SINGLE_USER = "#microsoft.graph.singleUser"
GROUP_MEMBERS = "#microsoft.graph.groupMembers"

_ISO_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_iso_duration(value: str) -> timedelta:
    """``P365D``/``PT1H45M``/``PT8H`` → ``timedelta``. Years and months are refused: they have
    no fixed length and PIM policies express durations in days and hours."""
    match = _ISO_DURATION.match(value.strip().upper())
    if match is None or value.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO-8601 day/time duration: {value!r}")
    parts = {name: float(number) for name, number in match.groupdict().items() if number}
    return timedelta(
        weeks=parts.get("weeks", 0.0),
        days=parts.get("days", 0.0),
        hours=parts.get("hours", 0.0),
        minutes=parts.get("minutes", 0.0),
        seconds=parts.get("seconds", 0.0),
    )


class PolicyRuleTarget(GraphModel):
    """``unifiedRoleManagementPolicyRuleTarget``: who (``caller``) does what at which ``level``."""

    odata_type: str | None = Field(default=None, alias=ODATA_TYPE)
    caller: str | None = None
    operations: list[str] = Field(default_factory=list)
    level: str | None = None
    inheritable_settings: list[str] = Field(default_factory=list)
    enforced_settings: list[str] = Field(default_factory=list)


class SingleUser(TypedGraphModel):
    odata_type: str = Field(default=SINGLE_USER, alias=ODATA_TYPE)
    user_id: str
    description: str | None = None


class GroupMembers(TypedGraphModel):
    odata_type: str = Field(default=GROUP_MEMBERS, alias=ODATA_TYPE)
    group_id: str
    description: str | None = None


class OtherSubjectSet(TypedGraphModel):
    """An approver kind this client doesn't model (e.g. ``requestorManager``); kept verbatim."""


def _subject_set_tag(value: object) -> str:
    raw = _odata_type_of(value).casefold()
    if raw.endswith("singleuser"):
        return "single_user"
    if raw.endswith("groupmembers"):
        return "group_members"
    return "other"


SubjectSet = Annotated[
    Annotated[SingleUser, Tag("single_user")]
    | Annotated[GroupMembers, Tag("group_members")]
    | Annotated[OtherSubjectSet, Tag("other")],
    Discriminator(_subject_set_tag),
]


class ApprovalStage(GraphModel):
    odata_type: str | None = Field(default=None, alias=ODATA_TYPE)
    approval_stage_time_out_in_days: int | None = None
    is_approver_justification_required: bool | None = None
    escalation_time_in_minutes: int | None = None
    is_escalation_enabled: bool | None = None
    primary_approvers: list[SubjectSet] = Field(default_factory=list)
    escalation_approvers: list[SubjectSet] = Field(default_factory=list)


class ApprovalSettings(GraphModel):
    odata_type: str | None = Field(default=None, alias=ODATA_TYPE)
    is_approval_required: bool | None = None
    is_approval_required_for_extension: bool | None = None
    is_requestor_justification_required: bool | None = None
    approval_mode: str | None = None
    approval_stages: list[ApprovalStage] = Field(default_factory=list)


class _PolicyRule(TypedGraphModel):
    id: str
    target: PolicyRuleTarget | None = None

    def to_patch_body(self) -> JsonObject:
        """The PATCH body: the whole rule as read (plus changes), with ``@odata.type`` first and
        the read-only ``@odata.context`` removed (reference §7.3)."""
        body = self.to_graph()
        body.pop(ODATA_CONTEXT, None)
        return {ODATA_TYPE: self.odata_type, **{k: v for k, v in body.items() if k != ODATA_TYPE}}


class ExpirationRule(_PolicyRule):
    """How long an assignment may last; ``maximum_duration`` is kept as Graph's string."""

    odata_type: str = Field(default=EXPIRATION_RULE, alias=ODATA_TYPE)
    is_expiration_required: bool | None = None
    maximum_duration: str | None = None

    @property
    def maximum_timedelta(self) -> timedelta | None:
        return None if self.maximum_duration is None else parse_iso_duration(self.maximum_duration)

    def with_maximum(self, duration: timedelta, *, required: bool = True) -> ExpirationRule:
        """A copy with expiry after at most ``duration`` (``required=False``: permanent ok)."""
        return self.model_copy(
            update={
                "maximum_duration": format_iso_duration(duration),
                "is_expiration_required": required,
            }
        )


class EnablementRule(_PolicyRule):
    """What the caller must provide: ``MultiFactorAuthentication``, ``Justification``,
    ``Ticketing``."""

    odata_type: str = Field(default=ENABLEMENT_RULE, alias=ODATA_TYPE)
    enabled_rules: list[str] = Field(default_factory=list)


class ApprovalRule(_PolicyRule):
    odata_type: str = Field(default=APPROVAL_RULE, alias=ODATA_TYPE)
    setting: ApprovalSettings | None = None


class AuthenticationContextRule(_PolicyRule):
    odata_type: str = Field(default=AUTHENTICATION_CONTEXT_RULE, alias=ODATA_TYPE)
    is_enabled: bool | None = None
    claim_value: str | None = None


class NotificationRule(_PolicyRule):
    odata_type: str = Field(default=NOTIFICATION_RULE, alias=ODATA_TYPE)
    notification_type: str | None = None
    recipient_type: str | None = None
    notification_level: str | None = None
    is_default_recipients_enabled: bool | None = None
    notification_recipients: list[str] = Field(default_factory=list)


class UnknownPolicyRule(_PolicyRule):
    """A rule type this client doesn't model; every property is kept for the round-trip."""


_RULE_TAGS = {
    "expirationrule": "expiration",
    "enablementrule": "enablement",
    "approvalrule": "approval",
    "authenticationcontextrule": "authentication_context",
    "notificationrule": "notification",
}


def _odata_type_of(value: object) -> str:
    if isinstance(value, dict):
        raw = value.get(ODATA_TYPE, value.get("odata_type"))
    else:
        raw = getattr(value, "odata_type", None)
    return raw if isinstance(raw, str) else ""


def _rule_tag(value: object) -> str:
    raw = _odata_type_of(value).casefold()
    prefix = RULE_TYPE_PREFIX.casefold()
    suffix = raw.removeprefix("#").removeprefix(prefix.removeprefix("#"))
    return _RULE_TAGS.get(suffix, "unknown")


PolicyRule = Annotated[
    Annotated[ExpirationRule, Tag("expiration")]
    | Annotated[EnablementRule, Tag("enablement")]
    | Annotated[ApprovalRule, Tag("approval")]
    | Annotated[AuthenticationContextRule, Tag("authentication_context")]
    | Annotated[NotificationRule, Tag("notification")]
    | Annotated[UnknownPolicyRule, Tag("unknown")],
    Discriminator(_rule_tag),
]
"""Any policy rule, chosen by ``@odata.type`` (case-insensitive)."""

POLICY_RULE_ADAPTER: TypeAdapter[PolicyRule] = TypeAdapter(PolicyRule)


def parse_policy_rule(data: object) -> PolicyRule:
    """A rule from its JSON (dict) form, typed by ``@odata.type``."""
    return POLICY_RULE_ADAPTER.validate_python(data)


class RoleManagementPolicy(GraphModel):
    """``unifiedRoleManagementPolicy``: a read-only container of rules."""

    id: str
    display_name: str | None = None
    description: str | None = None
    is_organization_default: bool | None = None
    scope_id: str | None = None
    scope_type: str | None = None
    last_modified_date_time: datetime | None = None
    last_modified_by: Identity | None = None
    rules: list[PolicyRule] | None = None
    effective_rules: list[PolicyRule] | None = None


class PolicyAssignment(GraphModel):
    """``unifiedRoleManagementPolicyAssignment``: maps a role to its policy (``policy_id``)."""

    id: str
    policy_id: str
    scope_id: str | None = None
    scope_type: str | None = None
    role_definition_id: str | None = None
    policy: RoleManagementPolicy | None = None
