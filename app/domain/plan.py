"""The rollout plan as data: ``PlanSpec`` / ``PhaseSpec`` / the ``Step`` tagged union.

A plan file (``app/rollout_plans/*.yaml``) parses into a frozen ``PlanSpec`` that never changes
during a run; progress lives on the plan and phase rows. Plans name groups and people by
*binding* (``it_platform_team``, ``security_team``...), which each tenant maps to object ids.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.machine import Gate
from app.domain.mailbox import check_address

KEY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
BINDING_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSettings(_Spec):
    """PIM settings for activating one role; unset fields leave the tenant's value alone."""

    activation_max_duration: timedelta | None = Field(
        default=None, description="Expiration_EndUser_Assignment.maximumDuration (30 min to 24 h)"
    )
    require_justification: bool | None = None
    require_ticket: bool | None = None
    require_mfa: bool | None = None
    eligible_expiration: timedelta | None = Field(
        default=None,
        description="how long new eligible assignments last; unset means permanent eligible",
    )

    def merged(self, override: RoleSettings | None) -> RoleSettings:
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class TargetRole(_Spec):
    id: UUID
    name: str | None = None
    settings: RoleSettings = RoleSettings()


class PrincipalRef(_Spec):
    """A tenant binding name, or an explicit user/group object id."""

    binding: str | None = Field(default=None, pattern=BINDING_PATTERN)
    user: UUID | None = None
    group: UUID | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PrincipalRef:
        if sum(v is not None for v in (self.binding, self.user, self.group)) != 1:
            raise ValueError("give exactly one of binding, user or group")
        return self


class CohortKind(StrEnum):
    binding = "binding"
    principals = "principals"
    remaining = "remaining"


class Cohort(_Spec):
    """Who is converted: a bound group's transitive members, listed principals, or everyone left."""

    binding: str | None = Field(default=None, pattern=BINDING_PATTERN)
    principals: list[UUID] | None = None
    remaining: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> Cohort:
        chosen = [self.binding is not None, self.principals is not None, self.remaining]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of binding, principals or remaining: true")
        if self.principals is not None and not self.principals:
            raise ValueError("principals must not be empty")
        return self

    @property
    def kind(self) -> CohortKind:
        if self.binding is not None:
            return CohortKind.binding
        if self.principals is not None:
            return CohortKind.principals
        return CohortKind.remaining


class ApplyRoleSettingsStep(_Spec):
    kind: Literal["apply_role_settings"]
    roles: list[UUID] | None = Field(default=None, description="default: every target role")
    settings: RoleSettings | None = Field(
        default=None, description="overrides on top of each role's own settings"
    )


class ConvertCohortStep(_Spec):
    kind: Literal["convert_cohort"]
    cohort: Cohort
    roles: list[UUID] | None = Field(default=None, description="default: every target role")
    justification: str = Field(
        default="PIM rollout: standing access becomes just-in-time", max_length=500
    )


class SendCommsStep(_Spec):
    kind: Literal["send_comms"]
    template: str = Field(default="default", pattern=r"^[a-z0-9_-]+$")
    subject: str = Field(default="Your admin roles are becoming just-in-time", max_length=255)


class ApprovalRule(_Spec):
    roles: list[UUID] = Field(min_length=1)
    approvers: list[PrincipalRef] = Field(min_length=1)
    min_approvers: int = Field(default=1, ge=1, description="distinct people able to approve")
    approval_timeout_days: int = Field(default=1, ge=1, le=7)
    require_approver_justification: bool = True


class RequireApprovalStep(_Spec):
    kind: Literal["require_approval"]
    rules: list[ApprovalRule] = Field(min_length=1)


class ReviewScope(StrEnum):
    eligible = "eligible"
    all = "all"


class CreateAccessReviewsStep(_Spec):
    kind: Literal["create_access_reviews"]
    roles: list[UUID] | None = Field(default=None, description="default: every target role")
    reviewers: PrincipalRef = PrincipalRef(binding="role_owners")
    interval_months: int = Field(default=3, ge=1, le=12)
    duration_days: int = Field(default=14, ge=1, le=30)
    default_decision: Literal["Deny", "Approve", "None"] = "Deny"
    auto_apply: bool = True
    scope: ReviewScope = Field(
        default=ReviewScope.eligible,
        description=(
            "eligible keeps break-glass (permanent active) out of a review whose default "
            "decision removes access"
        ),
    )


class MailboxRef(_Spec):
    """Where notifications go: a tenant binding of kind ``mailbox``, or an address."""

    binding: str | None = Field(default=None, pattern=BINDING_PATTERN)
    address: str | None = Field(default=None, max_length=254)

    @model_validator(mode="after")
    def _exactly_one(self) -> MailboxRef:
        if (self.binding is None) == (self.address is None):
            raise ValueError("give exactly one of binding or address")
        if self.address is not None:
            check_address(self.address)
        return self


NOTIFICATION_RULE_IDS: tuple[str, ...] = tuple(
    f"Notification_{recipient}_{when}"
    for when in ("Admin_Eligibility", "Admin_Assignment", "EndUser_Assignment")
    for recipient in ("Admin", "Requestor", "Approver")
)
"""The nine fixed notification rules of a role's policy: who is mailed (Admin, Requestor,
Approver) when an admin assigns eligibility or an active role, or a user activates."""

NotificationLevel = Literal["All", "Critical", "None"]
"""Graph's ``notificationLevel``: every mail, only critical ones, or none."""


class NotificationRuleSetting(_Spec):
    """One ``Notification_*`` rule of each role's PIM policy (reference §7.2)."""

    id: str = Field(description="e.g. Notification_Admin_Admin_Assignment")
    level: NotificationLevel = "All"
    default_recipients: bool | None = Field(
        default=None,
        description="isDefaultRecipientsEnabled (the role's admins, the requestor or the "
        "approvers, by rule); unset leaves the tenant's value",
    )


class SetNotificationRulesStep(_Spec):
    """Mail the recipients when the role is assigned (eligible or active) and activated.

    The recipients are added to each rule's ``notificationRecipients``; whoever the rule
    already mailed keeps getting the mails.
    """

    kind: Literal["set_notification_rules"]
    roles: list[UUID] | None = Field(default=None, description="default: every target role")
    recipients: list[MailboxRef] = Field(min_length=1, max_length=20)
    rules: list[NotificationRuleSetting] = Field(
        default_factory=lambda: [
            NotificationRuleSetting(id="Notification_Admin_Admin_Assignment"),
            NotificationRuleSetting(id="Notification_Admin_Admin_Eligibility"),
            NotificationRuleSetting(id="Notification_Admin_EndUser_Assignment"),
        ],
        min_length=1,
        description="default: the three rules that mail admins on assignment and activation",
    )


Step = Annotated[
    ApplyRoleSettingsStep
    | ConvertCohortStep
    | SendCommsStep
    | RequireApprovalStep
    | CreateAccessReviewsStep
    | SetNotificationRulesStep,
    Field(discriminator="kind"),
]


class HealthGateKind(StrEnum):
    max_failed_approvals = "max_failed_approvals"
    no_drift = "no_drift"
    max_activations_without_ticket = "max_activations_without_ticket"
    max_share_at_max_duration = "max_share_at_max_duration"


class HealthGate(_Spec):
    """A signal that must hold before the phase starts (checked by the monitoring reports)."""

    kind: HealthGateKind
    threshold: float = Field(default=0, ge=0)
    window: timedelta = Field(default=timedelta(days=7))


class PhaseSpec(_Spec):
    key: str = Field(pattern=KEY_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    starts_after: timedelta = Field(description="offset from the plan's start, e.g. P7D")
    gate: Gate = Gate.auto
    health_gates: list[HealthGate] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)


class PlanSpec(_Spec):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    title: str = ""
    description: str = ""
    roles: list[TargetRole] = Field(min_length=1, description="target roles, in conversion order")
    phases: list[PhaseSpec] = Field(min_length=1)

    def role(self, role_id: UUID) -> TargetRole | None:
        return next((r for r in self.roles if r.id == role_id), None)

    def role_ids(self, subset: list[UUID] | None = None) -> list[UUID]:
        """Target roles in plan order, optionally restricted to ``subset``."""
        if subset is None:
            return [r.id for r in self.roles]
        wanted = set(subset)
        return [r.id for r in self.roles if r.id in wanted]

    def phase(self, key: str) -> PhaseSpec | None:
        return next((p for p in self.phases if p.key == key), None)

    def spec_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63] or "plan"
