"""Tenants: create, read, update; secrets sealed at rest and write-only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.db.models import Tenant
from app.db.repos.tenants import TenantRepository
from app.domain.tenant import SECRET_AUTH_FIELDS, TenantAuth, TenantSpec
from app.domain.validation import problems_from_validation_error
from app.problems import ConflictError, InvalidInputError, NotFoundError
from app.services.secrets import SecretBox

_AUTH_ADAPTER: TypeAdapter[TenantAuth] = TypeAdapter(TenantAuth)


def _split_auth(auth: TenantAuth, box: SecretBox) -> tuple[dict[str, Any], str | None]:
    secret_fields = SECRET_AUTH_FIELDS.get(auth.kind, ())
    public = auth.model_dump(mode="json", exclude=set(secret_fields))
    secrets: dict[str, str] = {}
    for field in secret_fields:
        value = getattr(auth, field)
        if value is not None:
            secrets[field] = value.get_secret_value()
    return public, (box.seal(secrets) if secrets else None)


def _apply_spec(row: Tenant, spec: TenantSpec, box: SecretBox) -> None:
    row.name = spec.name
    row.graph_base_url = spec.graph_base_url
    row.auth_kind = spec.auth.kind
    row.auth_public, row.auth_secret_encrypted = _split_auth(spec.auth, box)
    row.break_glass_ids = [str(i) for i in spec.break_glass_ids]
    row.bindings = {k: v.model_dump(mode="json") for k, v in spec.bindings.items()}
    row.comms = spec.comms.model_dump(mode="json")
    row.automation = spec.automation.model_dump(mode="json")
    row.graph_limits = spec.graph_limits.model_dump(mode="json")


def create_tenant(session: Session, *, spec: TenantSpec, box: SecretBox, now: datetime) -> Tenant:
    repo = TenantRepository(session)
    if repo.get_by_name(spec.name) is not None:
        raise ConflictError(f"a tenant named {spec.name!r} already exists")
    row = Tenant(
        id=str(uuid.uuid4()),
        name=spec.name,
        graph_base_url=spec.graph_base_url,
        auth_kind=spec.auth.kind,
        auth_public={},
        break_glass_ids=[],
        bindings={},
        comms={},
        automation={},
        graph_limits={},
        created_at=now,
        updated_at=now,
    )
    _apply_spec(row, spec, box)
    try:
        repo.add(row)
    except IntegrityError:
        raise ConflictError(f"a tenant named {spec.name!r} already exists") from None
    return row


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    row = TenantRepository(session).get(tenant_id)
    if row is None:
        raise NotFoundError(f"no tenant with id {tenant_id}")
    return row


def list_tenants(session: Session) -> Sequence[Tenant]:
    return TenantRepository(session).list_tenants()


def tenant_auth(row: Tenant, box: SecretBox) -> TenantAuth:
    """The full auth block, secrets included, for building a Graph credential."""
    data: dict[str, Any] = dict(row.auth_public)
    if row.auth_secret_encrypted:
        data.update(box.open(row.auth_secret_encrypted))
    return _AUTH_ADAPTER.validate_python(data)


def tenant_spec(row: Tenant, box: SecretBox) -> TenantSpec:
    return TenantSpec.model_validate(
        {
            "name": row.name,
            "graph_base_url": row.graph_base_url,
            "auth": tenant_auth(row, box),
            "break_glass_ids": row.break_glass_ids,
            "bindings": row.bindings,
            "comms": row.comms,
            "automation": row.automation,
            "graph_limits": row.graph_limits,
        }
    )


def update_tenant(
    session: Session, *, tenant_id: str, changes: dict[str, Any], box: SecretBox, now: datetime
) -> Tenant:
    """Apply a partial update; the merged tenant is validated as a whole before anything changes."""
    row = get_tenant(session, tenant_id)
    current = tenant_spec(row, box)
    merged: dict[str, Any] = {
        name: getattr(current, name) for name in TenantSpec.model_fields if name not in changes
    }
    merged.update(changes)
    try:
        spec = TenantSpec.model_validate(merged)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc)
        raise InvalidInputError(
            "; ".join(str(p) for p in problems), [(p.path, p.message) for p in problems]
        ) from None
    if spec.name != row.name:
        other = TenantRepository(session).get_by_name(spec.name)
        if other is not None and other.id != row.id:
            raise ConflictError(f"a tenant named {spec.name!r} already exists")
    _apply_spec(row, spec, box)
    row.updated_at = now
    session.add(row)
    session.flush()
    return row
