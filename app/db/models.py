"""Every table, and only tables. Repositories map rows to domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db.types import UTCDateTime

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _utc(**kwargs: Any) -> Any:
    nullable = kwargs.pop("nullable", False)
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, **kwargs))


def _json(nullable: bool = False) -> Any:
    return Field(sa_column=Column(JSON, nullable=nullable))


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200, unique=True)
    graph_base_url: str = Field(max_length=2000)
    auth_kind: str = Field(max_length=32)
    auth_public: dict[str, Any] = _json()
    auth_secret_encrypted: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    break_glass_ids: list[str] = _json()
    bindings: dict[str, Any] = _json()
    comms: dict[str, Any] = _json()
    automation: dict[str, Any] = _json()
    graph_limits: dict[str, Any] = _json()
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = _utc()
    last_used_at: datetime | None = _utc(nullable=True)
    revoked_at: datetime | None = _utc(nullable=True)


class Plan(SQLModel, table=True):
    __tablename__ = "plan"
    __table_args__ = (Index("ix_plan_state", "state"),)

    id: str = Field(primary_key=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=36)
    name: str = Field(max_length=200)
    template: str | None = Field(default=None, max_length=200)
    spec: dict[str, Any] = _json()
    spec_hash: str = Field(max_length=64)
    binding_overrides: dict[str, Any] = _json()
    state: str = Field(max_length=32)
    version: int = Field(default=1)
    rollback_target: str | None = Field(default=None, max_length=63)
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    preflight: dict[str, Any] | None = _json(nullable=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = _utc()
    updated_at: datetime = _utc()
    started_at: datetime | None = _utc(nullable=True)
    finished_at: datetime | None = _utc(nullable=True)


class Phase(SQLModel, table=True):
    __tablename__ = "phase"
    __table_args__ = (UniqueConstraint("plan_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(foreign_key="plan.id", index=True, max_length=36)
    position: int
    key: str = Field(max_length=63)
    title: str = Field(max_length=200)
    gate: str = Field(max_length=16)
    state: str = Field(max_length=32)
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    due_at: datetime | None = _utc(nullable=True)
    started_at: datetime | None = _utc(nullable=True)
    finished_at: datetime | None = _utc(nullable=True)
    current_step: int = Field(default=0)


class Transition(SQLModel, table=True):
    """History: one row per state change (who, when, why, the version it produced), plus notes
    such as preflight verdicts that record the version they were made at."""

    __tablename__ = "transition"

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(foreign_key="plan.id", index=True, max_length=36)
    version: int
    event: str = Field(max_length=32)
    from_state: str = Field(max_length=32)
    to_state: str = Field(max_length=32)
    phase_key: str | None = Field(default=None, max_length=63)
    phase_from: str | None = Field(default=None, max_length=32)
    phase_to: str | None = Field(default=None, max_length=32)
    actor: str = Field(max_length=200)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    details: dict[str, Any] | None = _json(nullable=True)
    at: datetime = _utc()


class JournalEntry(SQLModel, table=True):
    """A Graph mutation: intent committed before the call, outcome after (invariant 4 and 5)."""

    __tablename__ = "journal_entry"
    __table_args__ = (Index("ix_journal_entry_plan_phase", "plan_id", "phase_key"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(foreign_key="plan.id", max_length=36)
    phase_key: str = Field(max_length=63)
    step_index: int
    operation: str = Field(max_length=48)
    idempotency_key: str = Field(max_length=300, unique=True)
    target: dict[str, Any] = _json()
    prior_state: dict[str, Any] | None = _json(nullable=True)
    desired_state: dict[str, Any] | None = _json(nullable=True)
    status: str = Field(max_length=16, index=True)
    outcome: dict[str, Any] | None = _json(nullable=True)
    graph_request_id: str | None = Field(default=None, max_length=100)
    error_code: str | None = Field(default=None, max_length=200)
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    fencing_token: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    reverses_id: int | None = Field(default=None, foreign_key="journal_entry.id")
    intent_at: datetime = _utc()
    completed_at: datetime | None = _utc(nullable=True)


class WorkItem(SQLModel, table=True):
    """One (principal, role, scope) to convert in a phase, with its progress."""

    __tablename__ = "work_item"
    __table_args__ = (
        UniqueConstraint(
            "plan_id", "phase_key", "principal_id", "role_definition_id", "directory_scope_id"
        ),
        Index("ix_work_item_plan_phase_state", "plan_id", "phase_key", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(foreign_key="plan.id", max_length=36)
    phase_key: str = Field(max_length=63)
    step_index: int
    position: int
    principal_id: str = Field(max_length=36)
    principal_type: str = Field(max_length=32)
    principal_name: str | None = Field(default=None, max_length=300)
    principal_upn: str | None = Field(default=None, max_length=300)
    role_definition_id: str = Field(max_length=36)
    directory_scope_id: str = Field(max_length=400)
    state: str = Field(max_length=24)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    not_before: datetime | None = _utc(nullable=True)
    updated_at: datetime = _utc()


class Lease(SQLModel, table=True):
    """Who may execute a plan right now; the token fences out a worker whose lease lapsed."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=200)
    holder: str = Field(max_length=200)
    token: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    acquired_at: datetime = _utc()
    expires_at: datetime = _utc()


class InventorySnapshot(SQLModel, table=True):
    __tablename__ = "inventory_snapshot"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=36)
    plan_id: str | None = Field(default=None, foreign_key="plan.id", index=True, max_length=36)
    status: str = Field(max_length=16)
    item_count: int = Field(default=0)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    taken_at: datetime = _utc()
    finished_at: datetime | None = _utc(nullable=True)


class InventoryItem(SQLModel, table=True):
    """A permanent Active assignment seen in the baseline."""

    __tablename__ = "inventory_item"
    __table_args__ = (
        Index("ix_inventory_item_snapshot_role", "snapshot_id", "role_definition_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: int = Field(foreign_key="inventory_snapshot.id")
    role_definition_id: str = Field(max_length=36)
    role_name: str = Field(max_length=200)
    principal_id: str = Field(max_length=36)
    principal_type: str = Field(max_length=32)
    principal_name: str | None = Field(default=None, max_length=300)
    principal_upn: str | None = Field(default=None, max_length=300)
    directory_scope_id: str = Field(max_length=400)
    assignment_id: str = Field(max_length=200)
    member_type: str = Field(max_length=16)
    created_outside_pim: bool


class MonitoringCursor(SQLModel, table=True):
    """How far collection of one source of PIM activity got for a tenant (incremental runs).

    ``position`` is the newest ``createdDateTime`` (requests) or ``activityDateTime`` (audits)
    stored so far; ``covers_from`` is where the collected history starts.
    """

    __tablename__ = "monitoring_cursor"

    tenant_id: str = Field(foreign_key="tenant.id", primary_key=True, max_length=36)
    source: str = Field(primary_key=True, max_length=32)
    position: datetime | None = _utc(nullable=True)
    covers_from: datetime | None = _utc(nullable=True)
    last_run_at: datetime | None = _utc(nullable=True)
    last_success_at: datetime | None = _utc(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    stored: int = Field(default=0)


class PimRequestRecord(SQLModel, table=True):
    """A self-service assignment request (``selfActivate`` / ``selfDeactivate``) as collected.

    Graph purges requests after about 45 days (domain facts), so the history lives here.
    """

    __tablename__ = "pim_request_record"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_id"),
        Index("ix_pim_request_record_tenant_requested", "tenant_id", "requested_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=36)
    request_id: str = Field(max_length=100)
    action: str = Field(max_length=32)
    status: str = Field(max_length=32)
    principal_id: str = Field(max_length=36)
    principal_name: str | None = Field(default=None, max_length=300)
    role_definition_id: str = Field(max_length=36)
    directory_scope_id: str = Field(max_length=400)
    requested_at: datetime = _utc()
    completed_at: datetime | None = _utc(nullable=True)
    start_at: datetime | None = _utc(nullable=True)
    end_at: datetime | None = _utc(nullable=True)
    max_duration_seconds: int | None = Field(default=None)
    approval_required: bool = Field(default=False)
    justification: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ticket_number: str | None = Field(default=None, max_length=200)
    ticket_system: str | None = Field(default=None, max_length=200)
    first_seen_at: datetime = _utc()
    updated_at: datetime = _utc()


class PimAuditRecord(SQLModel, table=True):
    """A directory audit record of category RoleManagement (reference §11.1), as collected."""

    __tablename__ = "pim_audit_record"
    __table_args__ = (
        UniqueConstraint("tenant_id", "audit_id"),
        Index("ix_pim_audit_record_tenant_at", "tenant_id", "activity_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=36)
    audit_id: str = Field(max_length=200)
    activity: str = Field(max_length=300)
    activity_at: datetime = _utc()
    result: str | None = Field(default=None, max_length=32)
    request_id: str | None = Field(default=None, max_length=100)
    principal_id: str | None = Field(default=None, max_length=36)
    role_definition_id: str | None = Field(default=None, max_length=36)
    initiated_by: str | None = Field(default=None, max_length=300)
    collected_at: datetime = _utc()


class StandingAssignmentRecord(SQLModel, table=True):
    """A permanent Active (``Assigned``, no end, direct) assignment seen by the collector."""

    __tablename__ = "standing_assignment_record"
    __table_args__ = (
        UniqueConstraint("tenant_id", "assignment_id"),
        Index("ix_standing_assignment_record_tenant_gone", "tenant_id", "gone_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=36)
    assignment_id: str = Field(max_length=200)
    principal_id: str = Field(max_length=36)
    principal_type: str | None = Field(default=None, max_length=32)
    principal_name: str | None = Field(default=None, max_length=300)
    role_definition_id: str = Field(max_length=36)
    directory_scope_id: str = Field(max_length=400)
    created_outside_pim: bool
    first_seen_at: datetime = _utc()
    last_seen_at: datetime = _utc()
    gone_at: datetime | None = _utc(nullable=True)


class Job(SQLModel, table=True):
    """Long work (start, preview, inventory, ...) run in the background of one server process.

    A request answers ``202`` with the job to poll; ``heartbeat_at`` tells a job whose process
    died from one still at work.
    """

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_plan_kind_state", "plan_id", "kind", "state"),)

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=32)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=36, index=True)
    plan_id: str | None = Field(default=None, foreign_key="plan.id", max_length=36)
    state: str = Field(max_length=16)
    actor: str = Field(max_length=200)
    worker_id: str = Field(max_length=200)
    progress: dict[str, Any] = _json()
    result: dict[str, Any] | None = _json(nullable=True)
    problem: dict[str, Any] | None = _json(nullable=True)
    created_at: datetime = _utc()
    heartbeat_at: datetime = _utc()
    finished_at: datetime | None = _utc(nullable=True)


class PostureReport(SQLModel, table=True):
    """A CISA SCuBA MS.AAD.7 posture report as it was when taken; never updated.

    ``scope`` says which roles count as highly privileged: ``cisa`` (CISA's list) or ``plan``
    (the plan's target roles, so its before and after compare like with like). ``rows`` holds
    one result per policy with its evidence and what the plan does about it.
    """

    __tablename__ = "posture_report"
    __table_args__ = (
        Index("ix_posture_report_tenant_scope", "tenant_id", "scope"),
        Index("ix_posture_report_plan_scope", "plan_id", "scope"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=36)
    plan_id: str | None = Field(default=None, foreign_key="plan.id", max_length=36)
    scope: str = Field(max_length=16)
    trigger: str = Field(max_length=32)
    phase_key: str | None = Field(default=None, max_length=63)
    actor: str = Field(max_length=200)
    taken_at: datetime = _utc()
    roles: list[dict[str, Any]] = _json()
    roles_not_in_tenant: list[dict[str, Any]] = _json()
    mailboxes: list[str] = _json()
    summary: dict[str, Any] = _json()
    rows: list[dict[str, Any]] = _json()
