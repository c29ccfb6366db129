"""Directory audit records (reference §11.1)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, Field

from app.graph.models._base import GraphModel


class UserIdentity(GraphModel):
    id: str | None = None
    display_name: str | None = None
    user_principal_name: str | None = None
    ip_address: str | None = None


class AppIdentity(GraphModel):
    app_id: str | None = None
    display_name: str | None = None
    service_principal_id: str | None = None
    service_principal_name: str | None = None


class AuditActivityInitiator(GraphModel):
    user: UserIdentity | None = None
    app: AppIdentity | None = None


class ModifiedProperty(GraphModel):
    display_name: str | None = None
    old_value: str | None = None
    new_value: str | None = None


class TargetResource(GraphModel):
    id: str | None = None
    display_name: str | None = None
    type: str | None = Field(default=None, validation_alias=AliasChoices("type", "Type"))
    """Old samples spell it ``Type``; both are read."""
    user_principal_name: str | None = None
    group_type: str | None = None
    modified_properties: list[ModifiedProperty] = Field(default_factory=list)


class KeyValue(GraphModel):
    key: str | None = None
    value: str | None = None


class DirectoryAudit(GraphModel):
    id: str
    category: str | None = None
    correlation_id: str | None = None
    result: str | None = None
    result_reason: str | None = None
    activity_display_name: str | None = None
    activity_date_time: datetime | None = None
    logged_by_service: str | None = None
    operation_type: str | None = None
    initiated_by: AuditActivityInitiator | None = None
    target_resources: list[TargetResource] = Field(default_factory=list)
    additional_details: list[KeyValue] = Field(default_factory=list)
