from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from app.api.auth import RequireAdmin, RequireOperator, RequireViewer
from app.api.deps import ContextDep, SessionDep
from app.api.inventory import inventory_read
from app.api.schemas import TenantCreate, TenantRead, TenantUpdate
from app.db.repos.inventory import InventoryRepository
from app.engine.context import EngineContext
from app.engine.inventory import InventoryError, take_inventory
from app.problems import NotFoundError, UnavailableError
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


@router.post("/{tenant_id}/inventory", status_code=status.HTTP_201_CREATED)
async def take_inventory_now(
    tenant_id: str, ctx: ContextDep, caller: RequireOperator
) -> dict[str, Any]:
    """Read every permanent Active assignment in the tenant now and store it as a snapshot."""
    with ctx.session_factory() as session:
        tenant = tenants.get_tenant(session, tenant_id)
    try:
        snapshot = await take_inventory(EngineContext.from_app(ctx), tenant)
    except InventoryError as exc:
        raise UnavailableError(str(exc)) from None
    with ctx.session_factory() as session:
        return inventory_read(session, snapshot, limit=1000, offset=0)


@router.get("/{tenant_id}/inventory/latest")
def latest_inventory(
    tenant_id: str,
    session: SessionDep,
    caller: RequireViewer,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    tenants.get_tenant(session, tenant_id)
    snapshot = InventoryRepository(session).latest(tenant_id)
    if snapshot is None:
        raise NotFoundError(f"tenant {tenant_id} has no inventory yet; POST to take one")
    return inventory_read(session, snapshot, limit=limit, offset=offset)
