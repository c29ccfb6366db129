"""Long work in the background of this server process, so a request answers within seconds.

``start`` (preflight and the baseline), ``preview``, ``preflight``, an inventory and a
monitoring collection can take minutes on a large tenant. Each runs as a job: a row with its
progress and, once done, its result or its problem (RFC 9457). The request that asked waits as
long as the caller prefers (RFC 7240 ``Prefer: wait=N``) and otherwise answers ``202`` with the
job to poll. A running job writes a heartbeat; one whose heartbeat stopped died with its process
and shows as failed, so it can be asked for again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from pydantic_core import to_jsonable_python
from sqlmodel import Session

from app.db.models import Job, Tenant
from app.db.repos.jobs import JobRepository
from app.engine.context import EngineContext
from app.graph.errors import GraphCredentialError, GraphError
from app.logging import get_logger
from app.problems import (
    AppError,
    ConflictError,
    NotFoundError,
    TenantCredentialError,
    UnavailableError,
)
from app.services.tenants import credential_problem

log = get_logger(__name__)

HEARTBEAT = timedelta(seconds=10)
LAPSED_AFTER = timedelta(seconds=60)
"""A running job without a heartbeat for this long died with its process."""
PROGRESS_WRITE_SECONDS = 1.0


class JobState(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


@dataclass
class JobProgress:
    """What the work says about where it is; written to the job at most once a second."""

    step: str = "queued"
    done: int | None = None
    total: int | None = None
    changed: bool = field(default=True, repr=False)

    def update(self, step: str, done: int | None = None, total: int | None = None) -> None:
        self.step, self.done, self.total = step, done, total or None
        self.changed = True

    __call__ = update

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"step": self.step}
        if self.total is not None:
            body.update(done=self.done or 0, total=self.total)
        return body


Work = Callable[[JobProgress], Awaitable[dict[str, Any]]]


def effective_state(job: Job, now: datetime) -> JobState:
    """A running job whose heartbeat stopped is failed: its process is gone."""
    if job.state == JobState.running.value and job.heartbeat_at < now - LAPSED_AFTER:
        return JobState.failed
    return JobState(job.state)


def effective_problem(job: Job, now: datetime) -> dict[str, Any] | None:
    """The problem to show for a job: its own once it failed, or why it stopped with its
    process; None while it runs or once it succeeded."""
    if effective_state(job, now) is not JobState.failed:
        return None
    return job.problem or lapsed_problem(job)


def lapsed_problem(job: Job) -> dict[str, Any]:
    return {
        "type": "https://pim-rollout.dev/problems/job-interrupted",
        "title": "The job was interrupted",
        "status": 503,
        "detail": (
            f"the {job.kind} job stopped when its server process ({job.worker_id}) did; "
            "nothing it was doing is half-done: ask for it again"
        ),
    }


class JobRunner:
    """Runs jobs as tasks of this process's event loop; one per app.

    ``wait_seconds``: how long a request waits for its job unless it asks otherwise.
    """

    def __init__(self, ectx: EngineContext, *, wait_seconds: float = 2.0) -> None:
        self.ectx = ectx
        self.wait_seconds = wait_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def submit(
        self, *, kind: str, tenant_id: str, plan_id: str | None, actor: str, work: Work
    ) -> Job:
        """Record the job and start it; a job of the same kind still running is a 409."""
        now = self.ectx.clock.now()
        job_id = _new_id()

        def create(session: Session) -> Job:
            repo = JobRepository(session)
            for other in repo.running(kind=kind, plan_id=plan_id, tenant_id=tenant_id):
                if effective_state(other, now) is JobState.running:
                    raise ConflictError(
                        f"a {kind} job for this {'plan' if plan_id else 'tenant'} is already "
                        f"running (job {other.id}); poll it at /api/v1/jobs/{other.id}",
                        job_id=other.id,
                    )
            return repo.add(
                Job(
                    id=job_id,
                    kind=kind,
                    tenant_id=tenant_id,
                    plan_id=plan_id,
                    state=JobState.running.value,
                    actor=actor,
                    worker_id=self.ectx.worker_id,
                    progress=JobProgress().to_json(),
                    created_at=now,
                    heartbeat_at=now,
                )
            )

        job = await self.ectx.db.write(create)
        task = asyncio.create_task(
            self._run(job_id, kind, tenant_id, work), name=f"job-{kind}-{job_id}"
        )
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))
        log.info("job.started", job_id=job_id, kind=kind, plan_id=plan_id, tenant_id=tenant_id)
        return job

    async def wait(self, job_id: str, seconds: float) -> Job:
        """The job once it finished, or as it stands when ``seconds`` have passed."""
        task = self._tasks.get(job_id)
        if task is not None and seconds > 0:
            await asyncio.wait({task}, timeout=seconds)
        return await self.get(job_id)

    async def get(self, job_id: str) -> Job:
        job = await self.ectx.db.read(lambda session: JobRepository(session).get(job_id))
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    async def aclose(self) -> None:
        """On shutdown: stop the jobs and record them as interrupted."""
        running = dict(self._tasks)
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        # A task cancelled before its first step never ran ``_run``: record those here.
        now = self.ectx.clock.now()
        await self.ectx.db.write(partial(_record_interrupted, list(running), now))

    async def _run(self, job_id: str, kind: str, tenant_id: str, work: Work) -> None:
        progress = JobProgress(step="started")
        beat = asyncio.create_task(self._beat(job_id, progress))
        result: dict[str, Any] | None = None
        problem: dict[str, Any] | None = None
        try:
            result = to_jsonable_python(await work(progress))
        except AppError as exc:
            problem = exc.to_problem()
        except GraphCredentialError as exc:
            # Work that did not turn it into the tenant's problem itself: do it here.
            problem = (await self._credential_problem(tenant_id, exc)).to_problem()
        except GraphError as exc:
            # A Graph failure the work did not expect is Graph's, not a bug of ours.
            log.warning("job.graph_error", job_id=job_id, kind=kind, error=str(exc))
            problem = UnavailableError(
                f"the {kind} job could not complete because Microsoft Graph failed: {exc}"
            ).to_problem()
        except asyncio.CancelledError:
            problem = _interrupted_problem(kind)
        except Exception as exc:  # the job boundary: record it, keep the process alive
            log.error("job.error", job_id=job_id, kind=kind, error=type(exc).__name__, exc_info=exc)
            problem = {
                "type": "https://pim-rollout.dev/problems/internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": f"the {kind} job failed unexpectedly ({type(exc).__name__}); "
                "it has been logged",
            }
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        await self._finish(job_id, progress, result, problem)

    async def _credential_problem(
        self, tenant_id: str, exc: GraphCredentialError
    ) -> TenantCredentialError:
        tenant = await self.ectx.db.read(lambda session: session.get(Tenant, tenant_id))
        if tenant is None:
            return TenantCredentialError(f"{exc.reason}. To fix: {exc.fix}")
        return credential_problem(tenant, exc)

    async def _finish(
        self,
        job_id: str,
        progress: JobProgress,
        result: dict[str, Any] | None,
        problem: dict[str, Any] | None,
    ) -> None:
        now = self.ectx.clock.now()
        if problem is None:
            progress.update("done", done=progress.done, total=progress.total)

        def finish(session: Session) -> None:
            job = JobRepository(session).get(job_id)
            assert job is not None
            job.state = (JobState.failed if problem else JobState.succeeded).value
            job.result = result
            job.problem = problem
            job.progress = progress.to_json()
            job.heartbeat_at = job.finished_at = now
            session.add(job)

        await asyncio.shield(self.ectx.db.write(finish))
        log.info("job.finished", job_id=job_id, failed=problem is not None)

    async def _beat(self, job_id: str, progress: JobProgress) -> None:
        last_beat = self.ectx.clock.now()
        while True:
            await asyncio.sleep(PROGRESS_WRITE_SECONDS)
            now = self.ectx.clock.now()
            if not progress.changed and now - last_beat < HEARTBEAT:
                continue
            progress.changed = False
            snapshot = progress.to_json()

            await self.ectx.db.write(partial(_record_beat, job_id, snapshot, now))
            last_beat = now


def _interrupted_problem(kind: str) -> dict[str, Any]:
    return {
        "type": "https://pim-rollout.dev/problems/job-interrupted",
        "title": "The job was interrupted",
        "status": 503,
        "detail": f"the {kind} job stopped because the server is shutting down; ask for it again",
    }


def _record_interrupted(job_ids: list[str], at: datetime, session: Session) -> None:
    repo = JobRepository(session)
    for job_id in job_ids:
        job = repo.get(job_id)
        if job is not None and job.state == JobState.running.value:
            job.state = JobState.failed.value
            job.problem = _interrupted_problem(job.kind)
            job.finished_at = job.heartbeat_at = at
            session.add(job)


def _record_beat(job_id: str, progress: dict[str, Any], at: datetime, session: Session) -> None:
    job = JobRepository(session).get(job_id)
    if job is not None and job.state == JobState.running.value:
        job.progress = progress
        job.heartbeat_at = at
        session.add(job)


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())
