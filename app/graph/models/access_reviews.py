"""Access review schedule definitions (reference §8)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.graph.models._base import ODATA_TYPE, GraphInput, GraphModel, Identity


class AccessReviewScope(GraphModel):
    """A review scope: ``accessReviewQueryScope`` (``query``),
    ``accessReviewInactiveUsersQueryScope`` (+ ``inactiveDuration``) or
    ``principalResourceMembershipsScope`` (principal/resource scopes). One model with the union
    of their properties; ``@odata.type`` tells which."""

    odata_type: str | None = Field(default=None, alias=ODATA_TYPE)
    query: str | None = None
    query_type: str | None = None
    query_root: str | None = None
    inactive_duration: str | None = None
    principal_scopes: list[AccessReviewScope] | None = None
    resource_scopes: list[AccessReviewScope] | None = None


class AccessReviewReviewerScope(GraphModel):
    """Who reviews: ``{"query": "/users/{id}", "queryType": "MicrosoftGraph"}`` and friends."""

    query: str
    query_type: str | None = "MicrosoftGraph"
    query_root: str | None = None


class RecurrencePattern(GraphModel):
    type: str | None = None
    interval: int | None = None
    day_of_month: int | None = None
    month: int | None = None
    days_of_week: list[str] | None = None
    first_day_of_week: str | None = None
    index: str | None = None


class RecurrenceRange(GraphModel):
    type: str | None = None
    start_date: str | None = None
    """A date (``2024-03-25``); doc samples also send a date-time, so it is kept as text."""
    end_date: str | None = None
    number_of_occurrences: int | None = None
    recurrence_time_zone: str | None = None


class PatternedRecurrence(GraphModel):
    pattern: RecurrencePattern | None = None
    range: RecurrenceRange | None = None


class AccessReviewApplyAction(GraphModel):
    odata_type: str | None = Field(default=None, alias=ODATA_TYPE)


class AccessReviewScheduleSettings(GraphModel):
    """Review settings. Caution (doc): default decision ``Deny`` + auto-apply removes everyone's
    access when reviewers don't respond."""

    mail_notifications_enabled: bool | None = None
    reminder_notifications_enabled: bool | None = None
    justification_required_on_approval: bool | None = None
    default_decision_enabled: bool | None = None
    default_decision: str | None = None
    auto_apply_decisions_enabled: bool | None = None
    instance_duration_in_days: int | None = None
    recommendations_enabled: bool | None = None
    recommendation_look_back_duration: str | None = None
    decision_histories_for_reviewers_enabled: bool | None = None
    recurrence: PatternedRecurrence | None = None
    apply_actions: list[AccessReviewApplyAction] | None = None


class AccessReviewNotificationRecipient(GraphModel):
    notification_template_type: str | None = None


class AccessReviewDefinitionCreate(GraphInput):
    """Body of ``POST /identityGovernance/accessReviews/definitions``."""

    display_name: str
    description_for_admins: str
    description_for_reviewers: str | None = None
    scope: AccessReviewScope
    instance_enumeration_scope: AccessReviewScope | None = None
    reviewers: list[AccessReviewReviewerScope] | None = None
    fallback_reviewers: list[AccessReviewReviewerScope] | None = None
    backup_reviewers: list[AccessReviewReviewerScope] | None = None
    settings: AccessReviewScheduleSettings | None = None
    additional_notification_recipients: list[AccessReviewNotificationRecipient] | None = None


class AccessReviewDefinition(GraphModel):
    """``accessReviewScheduleDefinition`` as Graph returns it."""

    id: str
    display_name: str | None = None
    status: str | None = None
    description_for_admins: str | None = None
    description_for_reviewers: str | None = None
    created_date_time: datetime | None = None
    last_modified_date_time: datetime | None = None
    created_by: Identity | None = None
    scope: AccessReviewScope | None = None
    instance_enumeration_scope: AccessReviewScope | None = None
    reviewers: list[AccessReviewReviewerScope] = Field(default_factory=list)
    fallback_reviewers: list[AccessReviewReviewerScope] = Field(default_factory=list)
    backup_reviewers: list[AccessReviewReviewerScope] = Field(default_factory=list)
    settings: AccessReviewScheduleSettings | None = None
