from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from app.api.auth import RequireAdmin, RequireViewer
from app.api.deps import ContextDep, SessionDep
from app.api.schemas import TenantCreate, TenantRead, TenantUpdate
from app.services import tenants

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantRead)
def create_tenant(
    body: TenantCreate, session: SessionDep, ctx: ContextDep, caller: RequireAdmin
) -> TenantRead:
    row = tenants.create_tenant(session, spec=body, box=ctx.secret_box, now=ctx.clock.now())
    return TenantRead.from_row(row)


@router.get("", response_model=list[TenantRead])
def list_tenants(session: SessionDep, caller: RequireViewer) -> list[TenantRead]:
    return [TenantRead.from_row(row) for row in tenants.list_tenants(session)]


@router.get("/{tenant_id}", response_model=TenantRead)
def get_tenant(tenant_id: str, session: SessionDep, caller: RequireViewer) -> TenantRead:
    return TenantRead.from_row(tenants.get_tenant(session, tenant_id))


@router.patch("/{tenant_id}", response_model=TenantRead)
def update_tenant(
    tenant_id: str, body: TenantUpdate, session: SessionDep, ctx: ContextDep, caller: RequireAdmin
) -> TenantRead:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "auth" in changes and body.auth is not None:
        changes["auth"] = body.auth
    row = tenants.update_tenant(
        session, tenant_id=tenant_id, changes=changes, box=ctx.secret_box, now=ctx.clock.now()
    )
    return TenantRead.from_row(row)
