from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.auth import RequireAdmin, RequireOperator, RequireViewer
from app.api.deps import ContextDep, DatabaseDep
from app.api.inventory import inventory_read
from app.api.jobs import JOB_RESPONSES, JobsDep, answer_with_job
from app.api.params import Offset
from app.api.prefer import PreferHeader, wait_preference
from app.api.problem_docs import AUTHENTICATED, problems
from app.api.schemas import CredentialCheckRead, TenantCreate, TenantRead, TenantUpdate
from app.db.repos.inventory import InventoryRepository
from app.engine.credentials import check_credential
from app.engine.inventory import InventoryError, take_inventory
from app.engine.jobs import JobProgress
from app.problems import NotFoundError, UnavailableError
from app.services import tenants

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], responses=AUTHENTICATED)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantRead,
    responses=problems(400, 409),
)
def create_tenant(
    body: TenantCreate, db: DatabaseDep, ctx: ContextDep, caller: RequireAdmin
) -> TenantRead:
    with db.writing() as session:
        row = tenants.create_tenant(session, spec=body, box=ctx.secret_box, now=ctx.clock.now())
    return TenantRead.from_row(row)


@router.get("", response_model=list[TenantRead])
def list_tenants(db: DatabaseDep, caller: RequireViewer) -> list[TenantRead]:
    with db.reading() as session:
        rows = tenants.list_tenants(session)
    return [TenantRead.from_row(row) for row in rows]


@router.get("/{tenant_id}", response_model=TenantRead, responses=problems(404))
def get_tenant(tenant_id: str, db: DatabaseDep, caller: RequireViewer) -> TenantRead:
    with db.reading() as session:
        row = tenants.get_tenant(session, tenant_id)
    return TenantRead.from_row(row)


@router.patch("/{tenant_id}", response_model=TenantRead, responses=problems(400, 404, 409))
def update_tenant(
    tenant_id: str, body: TenantUpdate, db: DatabaseDep, ctx: ContextDep, caller: RequireAdmin
) -> TenantRead:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "auth" in changes and body.auth is not None:
        changes["auth"] = body.auth
    with db.writing() as session:
        row = tenants.update_tenant(
            session, tenant_id=tenant_id, changes=changes, box=ctx.secret_box, now=ctx.clock.now()
        )
    return TenantRead.from_row(row)


@router.post(
    "/{tenant_id}/inventory",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    responses={**JOB_RESPONSES, **problems(400, 404, 409, 424, 503)},
)
async def take_inventory_now(
    tenant_id: str,
    ctx: ContextDep,
    jobs: JobsDep,
    caller: RequireOperator,
    prefer: PreferHeader = None,
) -> Response:
    """Read every permanent Active assignment in the tenant now and store it as a snapshot.

    A large tenant answers ``202`` with the job to poll (see ``Prefer``). A credential that
    gets no Graph token answers ``424`` (the job keeps the same problem).
    """
    tenant = await ctx.db.read(lambda session: tenants.get_tenant(session, tenant_id))

    async def work(progress: JobProgress) -> dict[str, Any]:
        try:
            snapshot = await take_inventory(jobs.ectx, tenant, progress=progress)
        except InventoryError as exc:
            raise UnavailableError(str(exc)) from None
        return await jobs.ectx.db.read(
            lambda session: inventory_read(session, snapshot, limit=1000, offset=0)
        )

    return await answer_with_job(
        jobs,
        wait_preference(prefer),
        kind="inventory",
        tenant_id=tenant_id,
        plan_id=None,
        actor=caller.actor,
        work=work,
        render=lambda result: JSONResponse(jsonable_encoder(result), status_code=201),
    )


@router.post("/{tenant_id}/check", response_model=CredentialCheckRead, responses=problems(404))
async def check_tenant_credential(
    tenant_id: str, ctx: ContextDep, jobs: JobsDep, caller: RequireOperator
) -> CredentialCheckRead:
    """Try the tenant's credential now: a fresh token, then one cheap Graph read with it.

    Answers ``200`` either way: ``ok`` says whether it works, ``detail`` what happened and
    what to fix, and ``problem`` is the ``424`` problem the tenant's other requests answer
    with while its credential gets no token. Changes nothing.
    """
    tenant = await ctx.db.read(lambda session: tenants.get_tenant(session, tenant_id))
    return CredentialCheckRead.from_check(await check_credential(jobs.ectx, tenant))


@router.get("/{tenant_id}/inventory/latest", responses=problems(404))
def latest_inventory(
    tenant_id: str,
    db: DatabaseDep,
    caller: RequireViewer,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    with db.reading() as session:
        tenants.get_tenant(session, tenant_id)
        snapshot = InventoryRepository(session).latest(tenant_id)
        if snapshot is None:
            raise NotFoundError(f"tenant {tenant_id} has no inventory yet; POST to take one")
        return inventory_read(session, snapshot, limit=limit, offset=offset)
