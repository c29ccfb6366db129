"""Request and response bodies of /api/v1 (Create / Update / Read families)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.api.params import MAX_ID
from app.db.models import ApiToken, Tenant, Transition
from app.domain.tenant import (
    MAX_URL_LENGTH,
    AutomationSettings,
    Binding,
    BindingName,
    CommsSettings,
    GraphLimits,
    TenantAuth,
    TenantSpec,
)
from app.engine.credentials import CredentialCheck
from app.services.plans import PlanView


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


TenantCreate = TenantSpec


class TenantUpdate(_Body):
    """Fields to change; omitted fields keep their value. ``auth`` replaces the whole block."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    graph_base_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    auth: TenantAuth | None = None
    break_glass_ids: list[UUID] | None = None
    bindings: dict[BindingName, Binding] | None = None
    comms: CommsSettings | None = None
    automation: AutomationSettings | None = None
    graph_limits: GraphLimits | None = None


class AuthRead(BaseModel):
    kind: str
    tenant_id: str | None = None
    client_id: str | None = None
    has_secret: bool = False


class TenantRead(BaseModel):
    id: str
    name: str
    graph_base_url: str
    auth: AuthRead
    break_glass_ids: list[str]
    bindings: dict[str, Any]
    comms: dict[str, Any]
    automation: dict[str, Any]
    graph_limits: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Tenant) -> TenantRead:
        public = row.auth_public
        return cls(
            id=row.id,
            name=row.name,
            graph_base_url=row.graph_base_url,
            auth=AuthRead(
                kind=row.auth_kind,
                tenant_id=public.get("tenant_id"),
                client_id=public.get("client_id"),
                has_secret=row.auth_secret_encrypted is not None,
            ),
            break_glass_ids=list(row.break_glass_ids),
            bindings=dict(row.bindings),
            comms=dict(row.comms),
            automation=dict(row.automation),
            graph_limits=dict(row.graph_limits),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class CredentialCheckRead(BaseModel):
    """What ``POST /api/v1/tenants/{id}/check`` found: 200 whether or not the credential works."""

    ok: bool = Field(description="a token was issued and Graph answered one read with it")
    credential_kind: str = Field(examples=["client_secret"])
    cloud: str = Field(
        description="global, usgov, usgov_dod or china; simulated for a local tenant",
        examples=["global"],
    )
    graph_base_url: str = Field(examples=["https://graph.microsoft.com/v1.0"])
    detail: str = Field(description="what happened and, when it failed, what to fix")
    checked_at: datetime
    problem: dict[str, Any] | None = Field(
        default=None,
        description="when the credential got no token: the problem (424) the tenant's other "
        "requests answer with",
    )

    @classmethod
    def from_check(cls, check: CredentialCheck) -> CredentialCheckRead:
        return cls(
            ok=check.ok,
            credential_kind=check.credential_kind,
            cloud=check.cloud,
            graph_base_url=check.graph_base_url,
            detail=check.detail,
            checked_at=check.checked_at,
            problem=check.problem,
        )


class PlanCreate(_Body):
    tenant_id: str = Field(min_length=1, max_length=36)
    template: str | None = Field(default=None, min_length=1, max_length=200)
    spec: dict[str, Any] | None = Field(
        default=None, description="an inline plan instead of a template"
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    bindings: dict[str, Any] = Field(default_factory=dict, description="per-plan binding overrides")


class PlanAction(_Body):
    reason: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = Field(default=None, ge=1, le=MAX_ID)
    phase: str | None = Field(
        default=None, max_length=63, description="advance/rollback: which phase"
    )


class ProgressRead(BaseModel):
    done: int
    failed: int
    remaining: int
    skipped: int
    kept_active: int
    total: int


class PhaseRead(BaseModel):
    key: str
    title: str
    state: str
    gate: str
    due_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    status_reason: str | None
    progress: ProgressRead


class PlanRead(BaseModel):
    id: str
    tenant_id: str
    name: str
    template: str | None
    state: str
    version: int
    spec_hash: str
    status_reason: str | None
    rollback_target: str | None
    allowed_events: list[str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    preflight: dict[str, Any] | None
    phases: list[PhaseRead]

    @classmethod
    def from_view(cls, view: PlanView) -> PlanRead:
        row = view.row
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            template=row.template,
            state=row.state,
            version=row.version,
            spec_hash=row.spec_hash,
            status_reason=row.status_reason,
            rollback_target=row.rollback_target,
            allowed_events=[e.value for e in view.allowed_events],
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            preflight=row.preflight,
            phases=[
                PhaseRead(
                    key=p.row.key,
                    title=p.row.title,
                    state=p.row.state,
                    gate=p.row.gate,
                    due_at=p.row.due_at,
                    started_at=p.row.started_at,
                    finished_at=p.row.finished_at,
                    status_reason=p.row.status_reason,
                    progress=ProgressRead(
                        done=p.progress.done,
                        failed=p.progress.failed,
                        remaining=p.progress.remaining,
                        skipped=p.progress.skipped,
                        kept_active=p.progress.kept_active,
                        total=p.progress.total,
                    ),
                )
                for p in view.phases
            ],
        )


class HistoryEntry(BaseModel):
    version: int
    event: str
    actor: str
    at: datetime
    reason: str | None
    from_state: str
    to_state: str
    phase: str | None
    phase_from: str | None
    phase_to: str | None
    details: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Transition) -> HistoryEntry:
        return cls(
            version=row.version,
            event=row.event,
            actor=row.actor,
            at=row.at,
            reason=row.reason,
            from_state=row.from_state,
            to_state=row.to_state,
            phase=row.phase_key,
            phase_from=row.phase_from,
            phase_to=row.phase_to,
            details=row.details,
        )


class TemplateRead(BaseModel):
    name: str
    valid: bool
    title: str | None = None
    description: str | None = None
    phases: list[dict[str, Any]] = Field(default_factory=list)
    roles: list[dict[str, Any]] = Field(default_factory=list)
    problems: list[dict[str, str]] = Field(default_factory=list)


class TokenCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(viewer|operator|admin)$")


class TokenRead(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiToken) -> TokenRead:
        assert row.id is not None
        return cls(
            id=row.id,
            name=row.name,
            role=row.role,
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class TokenCreated(TokenRead):
    token: str = Field(description="shown once; only its hash is stored")
