"""Long UI actions as background jobs: wait a little, then answer, or say it carries on.

Start, preflight, the dry run, an inventory and a collection can take minutes on a large
tenant. The UI submits each to the app's :class:`~app.engine.jobs.JobRunner`, waits up to
its ``wait_seconds`` (the ``job_wait_seconds`` setting) and, if the job is still running,
redirects to the page that lists the job with its progress (and refreshes itself until it is
done).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session

from app.db.models import Job
from app.db.repos.jobs import JobRepository
from app.engine.jobs import JobRunner, JobState, Work, effective_problem, effective_state

REFRESH_SECONDS = 3
"""A page that shows a running job reloads itself this often."""

KIND_LABELS: dict[str, str] = {
    "start": "Start: preflight, then the baseline",
    "preflight": "Preflight",
    "preview": "Dry run",
    "inventory": "Inventory",
    "collect": "Collect activity",
    "posture": "Posture report (CISA MS.AAD.7)",
}


async def get_jobs(request: Request) -> JobRunner:
    """The host app's job runner (the UI is mounted in it; see ``app.ui.app.mount_ui``)."""
    runner: JobRunner = request.app.state.host.state.jobs
    return runner


JobsDep = Annotated[JobRunner, Depends(get_jobs)]


def problem_slug(problem: dict[str, Any]) -> str:
    """``https://pim-rollout.dev/problems/preflight-failed`` -> ``preflight-failed``."""
    return str(problem.get("type", "")).rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Outcome:
    """A job as the UI reads it: its effective state, and its problem once it failed."""

    job: Job
    state: JobState
    problem: dict[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return self.state is JobState.succeeded

    @property
    def failed(self) -> bool:
        return self.state is JobState.failed

    @property
    def running(self) -> bool:
        return self.state is JobState.running

    @property
    def result(self) -> dict[str, Any]:
        return self.job.result or {}

    @property
    def detail(self) -> str:
        return str((self.problem or {}).get("detail", ""))


def outcome_of(job: Job, now: datetime) -> Outcome:
    return Outcome(job, effective_state(job, now), effective_problem(job, now))


async def run_job(
    runner: JobRunner,
    *,
    kind: str,
    tenant_id: str,
    plan_id: str | None,
    actor: str,
    work: Work,
) -> Outcome:
    """Submit ``work`` as a job and wait for it up to the runner's ``wait_seconds``.

    A job of the same kind still running raises :class:`~app.problems.ConflictError`.
    """
    job = await runner.submit(
        kind=kind, tenant_id=tenant_id, plan_id=plan_id, actor=actor, work=work
    )
    job = await runner.wait(job.id, runner.wait_seconds)
    return outcome_of(job, runner.ectx.clock.now())


# --- what the pages show ----------------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    """One job in a page's "Background jobs" list."""

    id: str
    kind: str
    label: str
    state: str
    step: str
    done: int | None
    total: int | None
    actor: str
    created_at: datetime
    finished_at: datetime | None
    detail: str | None
    plan_id: str | None

    @property
    def running(self) -> bool:
        return self.state == JobState.running.value

    @property
    def counted(self) -> str | None:
        """``12 / 30`` when the work knows how much there is."""
        if self.total is None:
            return None
        return f"{self.done or 0} / {self.total}"


def job_row(job: Job, now: datetime) -> JobRow:
    outcome = outcome_of(job, now)
    progress = job.progress or {}
    total = progress.get("total")
    done = progress.get("done")
    return JobRow(
        id=job.id,
        kind=job.kind,
        label=KIND_LABELS.get(job.kind, job.kind.replace("_", " ")),
        state=outcome.state.value,
        step=str(progress.get("step") or ""),
        done=int(done) if isinstance(done, int) else None,
        total=int(total) if isinstance(total, int) and total > 0 else None,
        actor=job.actor,
        created_at=job.created_at,
        finished_at=job.finished_at,
        detail=outcome.detail if outcome.failed else None,
        plan_id=job.plan_id,
    )


def job_rows(jobs: Sequence[Job], now: datetime) -> list[JobRow]:
    return [job_row(job, now) for job in jobs]


RECENT = 5


def recent_jobs(
    session: Session, now: datetime, *, plan_id: str | None = None, tenant_id: str | None = None
) -> list[JobRow]:
    """The newest jobs of a plan or a tenant, read in the caller's unit of work."""
    rows = JobRepository(session).list_for(plan_id=plan_id, tenant_id=tenant_id, limit=RECENT)
    return job_rows(rows, now)
