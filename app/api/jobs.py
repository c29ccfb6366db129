"""Answering a long request: the outcome if it is ready in time, else ``202`` and the job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.prefer import WaitPreference
from app.db.models import Job
from app.engine.jobs import (
    JobRunner,
    JobState,
    Work,
    effective_problem,
    effective_state,
    lapsed_problem,
)
from app.problems import RecordedProblemError


class JobRead(BaseModel):
    id: str
    kind: str
    state: JobState
    tenant_id: str
    plan_id: str | None
    actor: str
    progress: dict[str, Any]
    result: dict[str, Any] | None
    problem: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None
    href: str

    @classmethod
    def from_row(cls, job: Job, now: datetime) -> JobRead:
        return cls(
            id=job.id,
            kind=job.kind,
            state=effective_state(job, now),
            tenant_id=job.tenant_id,
            plan_id=job.plan_id,
            actor=job.actor,
            progress=job.progress,
            result=job.result,
            problem=effective_problem(job, now),
            created_at=job.created_at,
            finished_at=job.finished_at,
            href=f"/api/v1/jobs/{job.id}",
        )


JOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": JobRead,
        "description": "Still running: the job to poll (``Location``). Send ``Prefer: wait=N`` "
        "to wait longer for the outcome.",
    }
}


async def get_jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


JobsDep = Annotated[JobRunner, Depends(get_jobs)]


async def answer_with_job(
    jobs: JobRunner,
    prefer: WaitPreference,
    *,
    kind: str,
    tenant_id: str,
    plan_id: str | None,
    actor: str,
    work: Work,
    render: Callable[[dict[str, Any]], Response],
) -> Response:
    """Run ``work`` as a job and answer as the caller prefers (RFC 7240).

    Done within the wait: the outcome, as the synchronous endpoint always answered (``render``
    of the result, or the job's problem with its status). Otherwise, and always for
    ``respond-async``, ``202 Accepted`` with the job, ``Location`` to poll and ``Retry-After``.
    """
    job = await jobs.submit(kind=kind, tenant_id=tenant_id, plan_id=plan_id, actor=actor, work=work)
    seconds = prefer.seconds if prefer.asked else jobs.wait_seconds
    if seconds > 0:
        job = await jobs.wait(job.id, seconds)
    # respond-async: the job as submitted, even when a quick one is already done by now, so a
    # client that asked to poll always gets something to poll.
    applied = {"Preference-Applied": prefer.asked} if prefer.asked else {}
    now = jobs.ectx.clock.now()
    state = effective_state(job, now)
    if state is JobState.succeeded:
        response = render(job.result or {})
        response.headers.update(applied)
        return response
    if state is JobState.failed:
        raise RecordedProblemError(effective_problem(job, now) or lapsed_problem(job))
    return JSONResponse(
        JobRead.from_row(job, now).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/jobs/{job.id}", "Retry-After": "2", **applied},
    )
