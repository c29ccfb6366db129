"""Long requests as jobs: 202 and a job to poll, RFC 7240 ``Prefer``, and the job's outcome."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from app.api.jobs import answer_with_job
from app.api.prefer import wait_preference
from app.db.models import Job
from app.db.session import unit_of_work
from app.domain.tenant import TenantSpec
from app.engine.context import EngineContext
from app.engine.jobs import JobProgress, JobRunner, Work
from app.services import tenants
from app.services.context import AppContext
from app.settings import Settings
from app.simulator.app import create_simulator_app
from app.simulator.faults import SimLimits
from app.simulator.seed import generate_tenant

Headers = dict[str, dict[str, str]]


@pytest.fixture
def sim_app() -> Starlette:
    """Graph at 60 ms a request: starting a plan takes a few seconds of round trips."""
    return create_simulator_app(
        generate_tenant(users=80, admins=16, seed=5), limits=SimLimits(latency_ms=60)
    )


def new_plan(client: TestClient, tokens: Headers, tenant_body: dict[str, Any]) -> dict[str, Any]:
    tenant = client.post("/api/v1/tenants", json=tenant_body, headers=tokens["admin"])
    assert tenant.status_code == 201, tenant.text
    plan = client.post(
        "/api/v1/plans",
        json={"tenant_id": tenant.json()["id"], "template": "default"},
        headers=tokens["operator"],
    )
    assert plan.status_code == 201, plan.text
    return dict(plan.json())


def poll(client: TestClient, tokens: Headers, href: str) -> dict[str, Any]:
    for _ in range(600):
        job = client.get(href, headers=tokens["viewer"]).json()
        if job["state"] != "running":
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"the job at {href} never finished: {job}")


def start(client: TestClient, tokens: Headers, plan_id: str, prefer: str | None) -> Any:
    headers = {**tokens["operator"], **({"Prefer": prefer} if prefer else {})}
    return client.post(f"/api/v1/plans/{plan_id}/start", json={"reason": "go"}, headers=headers)


class TestStartAsAJob:
    def test_respond_async_answers_202_and_the_job_starts_the_plan(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        response = start(client, tokens, plan["id"], "respond-async")
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
        assert response.headers["Retry-After"] == "2"
        assert response.headers["Preference-Applied"] == "respond-async"
        assert job["kind"] == "start"
        assert job["state"] == "running"
        assert job["plan_id"] == plan["id"]
        assert job["href"] == response.headers["Location"]

        done = poll(client, tokens, response.headers["Location"])
        assert done["state"] == "succeeded", done
        assert done["result"]["id"] == plan["id"]
        assert done["result"]["state"] == "running"
        assert done["progress"]["step"] == "done"
        assert done["progress"]["total"] > 0, "the baseline's roles were counted"
        now = client.get(f"/api/v1/plans/{plan['id']}", headers=tokens["viewer"]).json()
        assert now["state"] == "running"
        listed = client.get(
            "/api/v1/jobs", params={"plan_id": plan["id"]}, headers=tokens["viewer"]
        ).json()
        assert [j["id"] for j in listed] == [job["id"]]

    def test_prefer_wait_answers_with_the_plan_as_before(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        response = start(client, tokens, plan["id"], "wait=120")
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == "wait=120"
        assert response.json()["state"] == "running"
        assert response.json()["version"] == plan["version"] + 2

    def test_a_malformed_wait_is_400_and_starts_nothing(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        response = start(client, tokens, plan["id"], "wait=soon")
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "Prefer: wait='soon' is not a whole number of seconds" in response.json()["detail"]
        assert (
            client.get(
                "/api/v1/jobs", params={"plan_id": plan["id"]}, headers=tokens["viewer"]
            ).json()
            == []
        )
        assert (
            client.get(f"/api/v1/plans/{plan['id']}", headers=tokens["viewer"]).json()["state"]
            == "draft"
        )

    def test_a_second_start_while_one_runs_is_409_naming_the_job(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        first = start(client, tokens, plan["id"], "respond-async").json()
        second = start(client, tokens, plan["id"], "respond-async")
        assert second.status_code == 409
        assert second.json()["job_id"] == first["id"]
        assert f"/api/v1/jobs/{first['id']}" in second.json()["detail"]
        assert poll(client, tokens, first["href"])["state"] == "succeeded"

    def test_a_failed_preflight_is_the_jobs_problem(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        body = {**sim_tenant_body, "break_glass_ids": sim_tenant_body["break_glass_ids"][:1]}
        plan = new_plan(client, tokens, body)
        response = start(client, tokens, plan["id"], "respond-async")
        assert response.status_code == 202
        done = poll(client, tokens, response.json()["href"])
        assert done["state"] == "failed"
        assert done["result"] is None
        assert done["problem"]["status"] == 409
        assert done["problem"]["detail"].startswith("preflight failed")
        inline = start(client, tokens, plan["id"], "wait=120")
        assert inline.status_code == 409
        assert inline.json()["detail"].startswith("preflight failed")


class TestOtherLongRequests:
    def test_preview_as_a_job_keeps_the_dry_run(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        response = client.post(
            f"/api/v1/plans/{plan['id']}/preview",
            headers={**tokens["operator"], "Prefer": "respond-async"},
        )
        assert response.status_code == 202
        done = poll(client, tokens, response.json()["href"])
        assert done["state"] == "succeeded"
        assert done["result"]["phases"][0]["phase"] == "pilot"
        csv = client.post(
            f"/api/v1/plans/{plan['id']}/preview",
            headers={**tokens["operator"], "Accept": "text/csv", "Prefer": "wait=120"},
        )
        assert csv.status_code == 200
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[0].startswith("phase,step")

    def test_inventory_as_a_job(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        response = client.post(
            f"/api/v1/tenants/{plan['tenant_id']}/inventory",
            headers={**tokens["operator"], "Prefer": "respond-async"},
        )
        assert response.status_code == 202
        done = poll(client, tokens, response.json()["href"])
        assert done["state"] == "succeeded"
        assert done["result"]["items"], done["result"].keys()


class TestJobAccess:
    def test_reading_a_job_needs_a_token_and_an_unknown_one_is_404(
        self, client: TestClient, tokens: Headers
    ) -> None:
        assert client.get("/api/v1/jobs/nope").status_code == 401
        missing = client.get("/api/v1/jobs/nope", headers=tokens["viewer"])
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no job nope"

    def test_starting_needs_an_operator(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        response = client.post(
            f"/api/v1/plans/{plan['id']}/start",
            headers={**tokens["viewer"], "Prefer": "respond-async"},
        )
        assert response.status_code == 403
        assert (
            client.get(
                "/api/v1/jobs", params={"plan_id": plan["id"]}, headers=tokens["viewer"]
            ).json()
            == []
        )


class _FinishesBeforeTheAnswer(JobRunner):
    """A runner whose jobs are done by the time ``submit`` returns: the quickest job there is."""

    async def submit(
        self, *, kind: str, tenant_id: str, plan_id: str | None, actor: str, work: Work
    ) -> Job:
        job = await super().submit(
            kind=kind, tenant_id=tenant_id, plan_id=plan_id, actor=actor, work=work
        )
        await asyncio.wait({self._tasks[job.id]})
        return job


class TestRespondAsync:
    async def test_a_job_already_done_is_still_answered_202_to_poll(
        self, ctx: AppContext, sim_tenant_body: dict[str, Any]
    ) -> None:
        spec = TenantSpec.model_validate({**sim_tenant_body, "auth": {"kind": "none"}})
        with unit_of_work(ctx.session_factory) as session:
            tenant_id = tenants.create_tenant(
                session, spec=spec, box=ctx.secret_box, now=ctx.clock.now()
            ).id
        runner = _FinishesBeforeTheAnswer(EngineContext.from_app(ctx))

        async def work(_progress: JobProgress) -> dict[str, Any]:
            return {"done": True}

        async def answer(prefer: str) -> Response:
            return await answer_with_job(
                runner,
                wait_preference(prefer),
                kind=f"test-{prefer}",
                tenant_id=tenant_id,
                plan_id=None,
                actor="tester",
                work=work,
                render=JSONResponse,
            )

        try:
            polled = await answer("respond-async")
            assert polled.status_code == 202, "a client that asked to poll always polls"
            assert polled.headers["Location"].startswith("/api/v1/jobs/")
            waited = await answer("wait=5")
            assert waited.status_code == 200
            assert bytes(waited.body) == b'{"done":true}'
        finally:
            await runner.aclose()


class TestServerWait:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"job_wait_seconds": 0})

    def test_without_prefer_the_servers_job_wait_applies(
        self, client: TestClient, tokens: Headers, sim_tenant_body: dict[str, Any]
    ) -> None:
        plan = new_plan(client, tokens, sim_tenant_body)
        response = start(client, tokens, plan["id"], None)
        assert response.status_code == 202, response.text
        assert "Preference-Applied" not in response.headers
        assert poll(client, tokens, response.headers["Location"])["state"] == "succeeded"
        second = client.post(
            "/api/v1/plans",
            json={"tenant_id": plan["tenant_id"], "template": "default", "name": "Second"},
            headers=tokens["operator"],
        )
        assert second.status_code == 201, second.text
        waited = start(client, tokens, second.json()["id"], "wait=60")
        # Its outcome (started, or refused while the first plan runs), not 202 at once.
        assert waited.status_code != 202, "a Prefer: wait of its own still applies"
