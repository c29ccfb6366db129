from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import RequireViewer
from app.api.deps import ContextDep
from app.api.jobs import JobRead, JobsDep
from app.api.problem_docs import AUTHENTICATED, problems
from app.db.repos.jobs import JobRepository

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=AUTHENTICATED)


@router.get("/{job_id}", response_model=JobRead, responses=problems(404))
async def get_job(job_id: str, jobs: JobsDep, ctx: ContextDep, caller: RequireViewer) -> JobRead:
    """A long request's job: its state, progress and, once done, its result or problem."""
    return JobRead.from_row(await jobs.get(job_id), ctx.clock.now())


@router.get("", response_model=list[JobRead])
async def list_jobs(
    ctx: ContextDep,
    caller: RequireViewer,
    plan_id: str | None = None,
    tenant_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[JobRead]:
    """The newest jobs first, of a plan or a tenant."""
    rows = await ctx.db.read(
        lambda session: list(
            JobRepository(session).list_for(plan_id=plan_id, tenant_id=tenant_id, limit=limit)
        )
    )
    now = ctx.clock.now()
    return [JobRead.from_row(row, now) for row in rows]
