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
from app.domain.tenant import (
    SECRET_AUTH_FIELDS,
    TRUSTED_AUTH,
    TRUSTED_URL,
    TenantAuth,
    TenantSpec,
)
from app.domain.validation import format_location, problems_from_validation_error
from app.graph.errors import GraphCredentialError
from app.problems import ConflictError, InvalidInputError, NotFoundError, TenantCredentialError
from app.services.secrets import SecretBox, SecretBoxError

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


def _apply_spec(row: Tenant, spec: TenantSpec, box: SecretBox, *, auth: bool = True) -> None:
    row.name = spec.name
    row.graph_base_url = spec.graph_base_url
    if auth:
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


def usable_auth(row: Tenant, box: SecretBox) -> TenantAuth:
    """The stored auth block for building the credential; ``TenantCredentialError`` (424) when
    it cannot be: its secret no longer decrypts, or it predates the checks it now fails."""
    try:
        return tenant_auth(row, box)
    except SecretBoxError:
        raise _credential_error(
            row,
            reason="its stored secret cannot be decrypted with this server's secret key "
            "(PIM_ROLLOUT_SECRET_KEY, or the key file, changed since the secret was stored)",
            fix="restore the secret key the secret was stored with, or give the tenant's auth "
            f"again with PATCH /api/v1/tenants/{row.id}",
        ) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{format_location(('auth', *error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise _credential_error(
            row,
            reason=f"its stored auth block is refused ({problems})",
            fix=f"give the tenant's auth again with PATCH /api/v1/tenants/{row.id}",
        ) from None


def credential_problem(row: Tenant, exc: GraphCredentialError) -> TenantCredentialError:
    """The 424 problem for a tenant whose credential could not get a Graph token."""
    return _credential_error(
        row,
        reason=exc.reason,
        fix=exc.fix.replace("{id}", row.id),
        cloud=exc.cloud,
        kind=exc.credential_kind,
    )


def _credential_error(
    row: Tenant, *, reason: str, fix: str, cloud: str | None = None, kind: str | None = None
) -> TenantCredentialError:
    kind = kind or row.auth_kind
    where = f" in the {cloud} cloud" if cloud else ""
    return TenantCredentialError(
        f"tenant {row.name!r} ({row.id}): its {kind} credential cannot get a Microsoft Graph "
        f"token{where}: {reason}. To fix: {fix}; then check it with "
        f"POST /api/v1/tenants/{row.id}/check",
        tenant_id=row.id,
        credential_kind=kind,
        cloud=cloud,
    )


def update_tenant(
    session: Session, *, tenant_id: str, changes: dict[str, Any], box: SecretBox, now: datetime
) -> Tenant:
    """Apply a partial update; the merged tenant is validated as a whole before anything changes.

    The stored credential is not opened unless ``auth`` changes: it was checked when it was
    given, so an update of anything else (a freeze, say) never depends on it. Its secrets stand
    in as placeholders for the validation and its columns are left as they are.
    """
    row = get_tenant(session, tenant_id)
    stored: dict[str, Any] = {
        "name": row.name,
        "graph_base_url": row.graph_base_url,
        "auth": _stored_auth_shape(row),
        "break_glass_ids": row.break_glass_ids,
        "bindings": row.bindings,
        "comms": row.comms,
        "automation": row.automation,
        "graph_limits": row.graph_limits,
    }
    merged = {name: value for name, value in stored.items() if name not in changes}
    merged.update(changes)
    auth_changed = "auth" in changes
    context = {
        TRUSTED_AUTH: not auth_changed,
        TRUSTED_URL: not auth_changed and "graph_base_url" not in changes,
    }
    try:
        spec = TenantSpec.model_validate(merged, context=context)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc)
        raise InvalidInputError(
            "; ".join(str(p) for p in problems), [(p.path, p.message) for p in problems]
        ) from None
    if spec.name != row.name:
        other = TenantRepository(session).get_by_name(spec.name)
        if other is not None and other.id != row.id:
            raise ConflictError(f"a tenant named {spec.name!r} already exists")
    _apply_spec(row, spec, box, auth=auth_changed)
    row.updated_at = now
    session.add(row)
    session.flush()
    return row


def _stored_auth_shape(row: Tenant) -> dict[str, Any]:
    """The stored auth block with placeholders for its sealed secrets (never opened here)."""
    data: dict[str, Any] = dict(row.auth_public)
    required = {"client_secret": ("client_secret",), "certificate": ("certificate_pem",)}
    for field in required.get(row.auth_kind, ()):
        data[field] = "(stored)"
    return data
