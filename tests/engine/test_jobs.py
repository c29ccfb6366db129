"""Long work as jobs: recorded, run in the background, answered when done, never run twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet

from app.db.models import Tenant
from app.db.session import Database, SessionFactory
from app.engine.context import EngineContext
from app.engine.jobs import LAPSED_AFTER, JobProgress, JobRunner, JobState, effective_state
from app.graph.factory import GraphClientFactory
from app.problems import ConflictError, PreflightFailedError
from app.services.secrets import SecretBox
from app.settings import GraphSettings
from tests.factories import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runner(session_factory: SessionFactory, clock: FakeClock) -> JobRunner:
    db = Database(session_factory)
    now = clock.now()
    with db.writing() as session:
        session.add(
            Tenant(
                id="t1",
                name="Contoso",
                graph_base_url="http://127.0.0.1:9/v1.0",
                auth_kind="none",
                auth_public={},
                break_glass_ids=[],
                bindings={},
                comms={},
                automation={},
                graph_limits={},
                created_at=now,
                updated_at=now,
            )
        )
    ectx = EngineContext(
        db=db,
        graph_factory=GraphClientFactory(GraphSettings()),
        secret_box=SecretBox(Fernet.generate_key()),
        clock=clock,
        worker_id="worker-1",
    )
    return JobRunner(ectx)


async def counted(progress: JobProgress) -> dict[str, Any]:
    for done in range(3):
        progress("counting", done, 3)
        await asyncio.sleep(0)
    return {"counted": 3}


class TestJobRunner:
    async def test_a_job_runs_and_keeps_its_result(self, runner: JobRunner) -> None:
        job = await runner.submit(
            kind="inventory", tenant_id="t1", plan_id=None, actor="op", work=counted
        )
        assert job.state == "running"
        done = await runner.wait(job.id, 5)
        assert done.state == "succeeded"
        assert done.result == {"counted": 3}
        assert done.problem is None
        assert done.progress == {"step": "done", "done": 2, "total": 3}
        assert done.finished_at is not None

    async def test_a_refusal_is_kept_as_the_problem_it_answers(self, runner: JobRunner) -> None:
        async def refused(_progress: JobProgress) -> dict[str, Any]:
            raise PreflightFailedError("preflight failed: only one break-glass account")

        job = await runner.submit(
            kind="start", tenant_id="t1", plan_id=None, actor="op", work=refused
        )
        done = await runner.wait(job.id, 5)
        assert done.state == "failed"
        assert done.result is None
        assert done.problem is not None
        assert done.problem["status"] == 409
        assert done.problem["detail"] == "preflight failed: only one break-glass account"

    async def test_an_unexpected_error_fails_the_job_without_leaking_it(
        self, runner: JobRunner
    ) -> None:
        async def broken(_progress: JobProgress) -> dict[str, Any]:
            raise RuntimeError("secret=hunter2 in a message")

        job = await runner.submit(
            kind="preview", tenant_id="t1", plan_id=None, actor="op", work=broken
        )
        done = await runner.wait(job.id, 5)
        assert done.state == "failed"
        assert done.problem is not None
        assert done.problem["status"] == 500
        assert "hunter2" not in str(done.problem)
        assert "RuntimeError" in done.problem["detail"]

    async def test_the_same_kind_cannot_run_twice_at_once(self, runner: JobRunner) -> None:
        release = asyncio.Event()

        async def held(_progress: JobProgress) -> dict[str, Any]:
            await release.wait()
            return {}

        first = await runner.submit(
            kind="inventory", tenant_id="t1", plan_id=None, actor="op", work=held
        )
        with pytest.raises(ConflictError, match=f"already running \\(job {first.id}\\)"):
            await runner.submit(
                kind="inventory", tenant_id="t1", plan_id=None, actor="op", work=held
            )
        other = await runner.submit(
            kind="preview", tenant_id="t1", plan_id=None, actor="op", work=counted
        )
        assert (await runner.wait(other.id, 5)).state == "succeeded"
        release.set()
        assert (await runner.wait(first.id, 5)).state == "succeeded"
        again = await runner.submit(
            kind="inventory", tenant_id="t1", plan_id=None, actor="op", work=counted
        )
        assert (await runner.wait(again.id, 5)).state == "succeeded"

    async def test_a_job_whose_process_died_shows_failed_and_can_be_asked_again(
        self, runner: JobRunner, clock: FakeClock
    ) -> None:
        never = asyncio.Event()

        async def stuck(_progress: JobProgress) -> dict[str, Any]:
            await never.wait()
            return {}

        job = await runner.submit(
            kind="inventory", tenant_id="t1", plan_id=None, actor="op", work=stuck
        )
        # The process "dies": its task is gone and no heartbeat comes any more.
        runner._tasks.pop(job.id).cancel()
        clock.advance(seconds=LAPSED_AFTER.total_seconds() + 1)
        row = await runner.get(job.id)
        assert effective_state(row, clock.now()) is JobState.failed
        again = await runner.submit(
            kind="inventory", tenant_id="t1", plan_id=None, actor="op", work=counted
        )
        assert (await runner.wait(again.id, 5)).state == "succeeded"

    async def test_shutdown_records_running_jobs_as_interrupted(self, runner: JobRunner) -> None:
        never = asyncio.Event()

        async def stuck(_progress: JobProgress) -> dict[str, Any]:
            await never.wait()
            return {}

        job = await runner.submit(
            kind="preview", tenant_id="t1", plan_id=None, actor="op", work=stuck
        )
        await runner.aclose()
        row = await runner.get(job.id)
        assert row.state == "failed"
        assert row.problem is not None
        assert row.problem["status"] == 503
        assert "shutting down" in row.problem["detail"]

    async def test_waiting_returns_a_running_job_as_it_stands(self, runner: JobRunner) -> None:
        release = asyncio.Event()

        async def slow(progress: JobProgress) -> dict[str, Any]:
            progress("reading", 1, 10)
            await release.wait()
            return {}

        job = await runner.submit(
            kind="preview", tenant_id="t1", plan_id=None, actor="op", work=slow
        )
        row = await runner.wait(job.id, 0.2)
        assert row.state == "running"
        release.set()
        assert (await runner.wait(job.id, 5)).state == "succeeded"
        assert timedelta(0) <= row.heartbeat_at - row.created_at
