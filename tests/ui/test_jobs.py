"""Long UI actions run as background jobs: a quick answer, then progress on the page.

The UI waits a quarter of a second for a job here (``job_wait_seconds``) and the simulated
tenant answers slowly enough that start, preflight and the rest outlast it: the request
redirects at once and the plan (or tenant) page lists the job, with its progress, and reloads
itself until the job is done.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from app.db.models import Job, Plan
from app.db.session import unit_of_work
from app.domain.tenant import TenantSpec
from app.services import plans, tenants
from app.services.context import AppContext
from app.settings import Settings
from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant
from app.ui.jobs import JobRow
from tests.ui.conftest import SIM_URL, Ui, context_of, template_of

JOB_WAIT_S = 0.25
"""How long a UI request waits for its job here (2 s by default)."""
LATENCY_MS = 40
"""Graph at 40 ms a request: a start takes a second or two of round trips, well past the wait."""
SLOWER_MS = 100
"""For the shorter jobs (dry run, inventory), so that they outlast the wait too."""
COLLECT_MS = 400
"""A collection is three round trips: each must be slow for it to outlast the wait."""
POLL_SECONDS = 60.0
REFRESH = '<meta http-equiv="refresh" content="3">'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_wait_seconds": JOB_WAIT_S})


@pytest.fixture
def sim_app() -> Starlette:
    return create_simulator_app(
        generate_tenant(users=80, admins=16, seed=5),
        limits=SimLimits(latency_ms=LATENCY_MS, min_change_interval_seconds=0),
    )


def slow_down(sim_app: Starlette, latency_ms: float) -> None:
    with TestClient(sim_app) as sim:
        assert sim.put("/_sim/faults", json={"latency_ms": latency_ms}).status_code == 200


def _flashes(response: Any) -> list[tuple[str, str, str | None, list[str]]]:
    return [(f.level, f.title, f.detail, f.items) for f in context_of(response)["flashes"]]


def _start(ui: Ui, plan_id: str) -> Any:
    return ui.post(
        f"/ui/plans/{plan_id}/actions/start", reason="go live with the pilot", confirm="yes"
    )


def _jobs(response: Any) -> list[JobRow]:
    jobs: list[JobRow] = context_of(response)["jobs"]
    return jobs


def poll(get: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """GET the page every 0.1 s until ``done`` says so (at most a minute)."""
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        response = get()
        assert response.status_code == 200, response.text
        if done(response):
            return response
        assert time.monotonic() < deadline, f"still not done after {POLL_SECONDS} s"
        time.sleep(0.1)


def _plan_state(ctx: AppContext, plan_id: str) -> str:
    with ctx.session_factory() as session:
        plan = session.get(Plan, plan_id)
        assert plan is not None
        return plan.state


class TestStartInTheBackground:
    def test_redirects_at_once_and_the_plan_page_follows_the_job(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        began = time.monotonic()
        response = _start(as_operator, plan_id)
        waited = time.monotonic() - began
        assert response.status_code == 303
        assert response.headers["location"] == f"/ui/plans/{plan_id}"
        assert waited < 10, f"the request held on for {waited:.1f} s"

        page = as_operator.client.get(response.headers["location"])
        assert template_of(page) == "plans/detail.html"
        assert _flashes(page) == [
            (
                "info",
                "Starting the plan in the background: preflight, then the baseline.",
                "Progress shows below.",
                [],
            )
        ]
        (job,) = _jobs(page)
        assert (job.kind, job.state, job.actor) == ("start", "running", "operator-ui (operator)")
        # "queued" until the job's first progress is written (once a second).
        assert job.step in {"queued", "started", "preflight", "inventory: roles read"}
        assert job.detail is None
        assert context_of(page)["jobs_running"] is True
        assert REFRESH in page.text
        assert 'data-testid="job-step"' in page.text
        assert "Start: preflight, then the baseline" in page.text
        assert _plan_state(ctx, plan_id) == "draft"

        seen: set[str] = set()

        def finished(response: Any) -> bool:
            (row,) = _jobs(response)
            if row.running and row.counted:
                seen.add(row.counted)
            return not row.running

        page = poll(lambda: as_operator.client.get(f"/ui/plans/{plan_id}"), finished)
        (job,) = _jobs(page)
        assert job.state == "succeeded", job
        assert job.step == "done"
        assert job.total is not None, "the baseline's roles were counted"
        assert job.total > 0
        assert job.counted == f"{job.done} / {job.total}"
        assert f'<progress max="{job.total}"' in page.text
        assert job.finished_at is not None
        assert context_of(page)["jobs_running"] is False
        assert 'http-equiv="refresh"' not in page.text
        assert context_of(page)["page"].plan.state == "running"
        assert _plan_state(ctx, plan_id) == "running"
        with ctx.session_factory() as session:
            events = [t.event for t in plans.history(session, plan_id)]
        assert events.count("start") == 1

    def test_a_failed_preflight_ends_as_a_failed_job_shown_on_the_page(
        self, as_operator: Ui, ctx: AppContext, sim_profile: dict[str, Any]
    ) -> None:
        spec = TenantSpec.model_validate(
            {
                **sim_profile,
                "name": "One break-glass account",
                "graph_base_url": SIM_URL,
                "break_glass_ids": sim_profile["break_glass_ids"][:1],
            }
        )
        with unit_of_work(ctx.session_factory) as session:
            tenant = tenants.create_tenant(
                session, spec=spec, box=ctx.secret_box, now=ctx.clock.now()
            )
            plan_id = plans.create_plan(
                session,
                tenant_id=tenant.id,
                plans_dir=None,
                template="default",
                spec_data=None,
                name=None,
                binding_overrides={},
                actor="tester",
                now=ctx.clock.now(),
            ).row.id

        response = _start(as_operator, plan_id)
        assert response.status_code == 303
        page = poll(
            lambda: as_operator.client.get(f"/ui/plans/{plan_id}"),
            lambda r: not _jobs(r)[0].running,
        )
        (job,) = _jobs(page)
        assert (job.kind, job.state) == ("start", "failed")
        assert job.detail is not None
        assert job.detail.startswith("preflight failed")
        assert "break" in job.detail.lower()
        assert 'data-testid="job-problem"' in page.text
        assert job.detail.split(";")[0] in page.text
        assert 'http-equiv="refresh"' not in page.text
        assert _plan_state(ctx, plan_id) == "draft"
        # The refused start recorded its preflight, as a start that waited would have.
        assert context_of(page)["page"].preflight["passed"] is False

    def test_starting_again_while_it_runs_flashes_the_conflict(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        assert _start(as_operator, plan_id).status_code == 303
        first = _jobs(as_operator.client.get(f"/ui/plans/{plan_id}"))[0]
        assert first.running

        again = _start(as_operator, plan_id)
        assert again.status_code == 303
        assert again.headers["location"] == f"/ui/plans/{plan_id}"
        page = as_operator.client.get(again.headers["location"])
        ((level, title, detail, _),) = _flashes(page)
        assert (level, title) == ("warning", "Start is already running in the background.")
        assert detail is not None
        assert "already running" in detail
        assert first.id in detail
        assert [j.id for j in _jobs(page)] == [first.id], "the second start made no job"

        page = poll(
            lambda: as_operator.client.get(f"/ui/plans/{plan_id}"),
            lambda r: not _jobs(r)[0].running,
        )
        assert _jobs(page)[0].state == "succeeded"
        with ctx.session_factory() as session:
            events = [t.event for t in plans.history(session, plan_id)]
        assert events.count("start") == 1

    def test_preflight_runs_in_the_background_too(
        self, as_operator: Ui, ctx: AppContext, plan_id: str
    ) -> None:
        response = as_operator.post(f"/ui/plans/{plan_id}/preflight")
        page = as_operator.client.get(response.headers["location"])
        assert _flashes(page)[0][:2] == ("info", "Running the preflight checks in the background.")
        assert _jobs(page)[0].kind == "preflight"
        page = poll(
            lambda: as_operator.client.get(f"/ui/plans/{plan_id}"),
            lambda r: not _jobs(r)[0].running,
        )
        assert _jobs(page)[0].state == "succeeded"
        assert context_of(page)["page"].preflight["passed"] is True
        assert _plan_state(ctx, plan_id) == "draft"


class TestDeadJobs:
    def test_a_job_whose_process_died_shows_as_failed(
        self, as_viewer: Ui, ctx: AppContext, plan_id: str, tenant_id: str
    ) -> None:
        long_ago = ctx.clock.now() - timedelta(minutes=5)
        with unit_of_work(ctx.session_factory) as session:
            session.add(
                Job(
                    id="00000000-0000-4000-8000-0000000000d1",
                    kind="start",
                    tenant_id=tenant_id,
                    plan_id=plan_id,
                    state="running",
                    actor="operator-ui (operator)",
                    worker_id="gone-host:1234",
                    progress={"step": "inventory: roles read", "done": 12, "total": 30},
                    created_at=long_ago,
                    heartbeat_at=long_ago,
                )
            )
        page = as_viewer.client.get(f"/ui/plans/{plan_id}")
        (job,) = _jobs(page)
        assert job.state == "failed"
        assert job.counted == "12 / 30"
        assert job.detail is not None
        assert "stopped when its server process (gone-host:1234) did" in job.detail
        assert context_of(page)["jobs_running"] is False
        assert 'http-equiv="refresh"' not in page.text
        assert '<progress max="30" value="12"' in page.text
        tenant_page = as_viewer.client.get(f"/ui/tenants/{tenant_id}")
        assert [j.id for j in _jobs(tenant_page)] == [job.id]
        assert f'href="/ui/plans/{plan_id}"' in tenant_page.text


class TestDryRunInTheBackground:
    def test_still_computing_then_the_result_and_its_csv(
        self, as_operator: Ui, sim_app: Starlette, plan_id: str
    ) -> None:
        slow_down(sim_app, SLOWER_MS)
        page = as_operator.client.get(f"/ui/plans/{plan_id}/preview")
        assert page.status_code == 200
        assert template_of(page) == "plans/preview.html"
        assert context_of(page)["computing"] is True
        assert context_of(page)["previews"] == []
        job_id = context_of(page)["job"].id
        assert 'data-testid="preview-computing"' in page.text
        assert (
            f'<meta http-equiv="refresh" content="3; url=/ui/plans/{plan_id}/preview?job={job_id}">'
            in page.text
        )
        assert "Download CSV" not in page.text

        # Asked again meanwhile: the dry run already computing, not a second one.
        again = as_operator.client.get(f"/ui/plans/{plan_id}/preview?phase=pilot")
        assert again.status_code == 303
        assert again.headers["location"] == f"/ui/plans/{plan_id}/preview?job={job_id}&phase=pilot"

        page = poll(
            lambda: as_operator.client.get(f"/ui/plans/{plan_id}/preview?job={job_id}"),
            lambda r: not context_of(r)["computing"],
        )
        previews = context_of(page)["previews"]
        assert [p.key for p in previews] == [
            "pilot",
            "feedback",
            "all-admins",
            "ga-approval",
            "access-reviews",
        ]
        assert any(p.changes for p in previews)
        assert 'http-equiv="refresh"' not in page.text
        assert f'href="/ui/plans/{plan_id}/preview.csv?job={job_id}"' in page.text
        assert f'name="job" value="{job_id}"' in page.text
        one = as_operator.client.get(f"/ui/plans/{plan_id}/preview?job={job_id}&phase=feedback")
        assert [p.key for p in context_of(one)["previews"]] == ["feedback"]

        download = as_operator.client.get(f"/ui/plans/{plan_id}/preview.csv?job={job_id}")
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(download.text)))
        assert rows[0] == ["phase", "step", "kind", "role", "subject", "before", "after", "note"]
        assert len(rows) - 1 == sum(len(p.changes) for p in previews)

        plan_page = as_operator.client.get(f"/ui/plans/{plan_id}")
        (job,) = _jobs(plan_page)
        assert (job.id, job.kind, job.state) == (job_id, "preview", "succeeded")
        assert f'href="/ui/plans/{plan_id}/preview?job={job_id}"' in plan_page.text

    def test_a_job_of_another_kind_or_plan_is_not_a_dry_run(
        self, as_operator: Ui, plan_id: str
    ) -> None:
        response = as_operator.client.get(f"/ui/plans/{plan_id}/preview?job=nope")
        assert response.status_code == 404
        csv_response = as_operator.client.get(f"/ui/plans/{plan_id}/preview.csv?job=nope")
        assert csv_response.status_code == 404
        _start(as_operator, plan_id)
        start_job = _jobs(as_operator.client.get(f"/ui/plans/{plan_id}"))[0]
        response = as_operator.client.get(f"/ui/plans/{plan_id}/preview?job={start_job.id}")
        assert response.status_code == 404
        assert template_of(response) == "errors/404.html"
        poll(
            lambda: as_operator.client.get(f"/ui/plans/{plan_id}"),
            lambda r: not _jobs(r)[0].running,
        )


class TestTenantJobs:
    def test_inventory_in_the_background(
        self, as_operator: Ui, sim_app: Starlette, tenant_id: str
    ) -> None:
        slow_down(sim_app, SLOWER_MS)
        response = as_operator.post(f"/ui/tenants/{tenant_id}/inventory")
        assert response.status_code == 303
        assert response.headers["location"] == f"/ui/tenants/{tenant_id}"
        page = as_operator.client.get(response.headers["location"])
        assert template_of(page) == "tenants/detail.html"
        assert _flashes(page)[0][:2] == ("info", "Taking the inventory in the background.")
        (job,) = _jobs(page)
        assert (job.kind, job.state) == ("inventory", "running")
        assert REFRESH in page.text
        assert context_of(page)["inventory"] is None

        again = as_operator.post(f"/ui/tenants/{tenant_id}/inventory")
        ((level, title, detail, _),) = _flashes(as_operator.client.get(again.headers["location"]))
        assert (level, title) == ("warning", "An inventory is already being taken.")
        assert detail is not None
        assert job.id in detail

        page = poll(
            lambda: as_operator.client.get(f"/ui/tenants/{tenant_id}"),
            lambda r: not _jobs(r)[0].running,
        )
        (job,) = _jobs(page)
        assert job.state == "succeeded"
        assert job.total is not None
        assert job.counted == f"{job.total} / {job.total}"
        inventory = context_of(page)["inventory"]
        assert inventory is not None
        assert inventory.pager.total > 0
        assert 'http-equiv="refresh"' not in page.text

    def test_collect_in_the_background(
        self, as_operator: Ui, sim_app: Starlette, tenant_id: str
    ) -> None:
        slow_down(sim_app, COLLECT_MS)
        monitoring = f"/ui/tenants/{tenant_id}/monitoring"
        response = as_operator.post(f"{monitoring}/collect")
        assert response.status_code == 303
        assert response.headers["location"] == monitoring
        page = as_operator.client.get(monitoring)
        assert _flashes(page)[0][:2] == ("info", "Collecting the activity in the background.")
        (job,) = _jobs(page)
        assert (job.kind, job.state) == ("collect", "running")
        assert job.step in {"queued", "collecting"}
        assert REFRESH in page.text
        page = poll(lambda: as_operator.client.get(monitoring), lambda r: not _jobs(r)[0].running)
        assert _jobs(page)[0].state == "succeeded", _jobs(page)[0]
        assert "Activity collected <time" in page.text
        assert 'http-equiv="refresh"' not in page.text
